/**
 * English stop words that {@link lexicalTerms} drops: function words every window has, which would
 * only add noise to BM25 (their idf is near zero anyway, but they lengthen every window alike).
 */
export const STOP_WORDS: ReadonlySet<string> = new Set(
  (
    "a an the of to in on at for and or is are was were be been did do does what when where who whom which how why with from by as " +
    "that this it its his her their they she he you i me my your our we about after before into over"
  ).split(" "),
);

/**
 * The terms BM25 compares (shared bm25Scores; the `lexical` routing rule): the text lower-cased,
 * every character but `a`–`z`, `0`–`9` and the space made a space, split on white space; terms of one
 * character and {@link STOP_WORDS} dropped; then a crude suffix strip (`ing`, `ed`, `es` or `s` at the
 * end, one of them), so that "hiking", "hiked" and "hikes" meet as "hik". Terms the strip empties
 * ("es") are dropped too. In order, repeats kept (BM25 counts them).
 *
 * Text outside ASCII has no terms: accented letters split words ("café" gives "caf"), and a question
 * in another script routes by the window vectors instead. The terms are stored with a built version
 * (a `lexical` manifest's windows), so a change here changes how new questions meet old terms: keep
 * it stable, or make it a new rule.
 *
 * @example
 * ```ts
 * lexicalTerms('Caroline said, "I went hiking with my kids!"'); // ["caroline", "said", "went", "hik", "kid"]
 * lexicalTerms("What is it?"); // []
 * ```
 */
export function lexicalTerms(text: string): string[] {
  const terms: string[] = [];
  for (const word of text
    .toLowerCase()
    .replace(/[^a-z0-9 ]/g, " ")
    .split(/\s+/)) {
    if (word.length <= 1 || STOP_WORDS.has(word)) continue;
    const term = word.replace(/(ing|ed|es|s)$/, "");
    if (term !== "") terms.push(term);
  }
  return terms;
}

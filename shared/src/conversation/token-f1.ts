/**
 * SQuAD-style answer normalisation: lower case, punctuation removed, the articles `a`, `an`, `the`
 * removed, white space collapsed to single spaces and trimmed, in the order of the SQuAD evaluation
 * script (punctuation is deleted, not replaced by a space: "self-care" becomes "selfcare").
 * Punctuation is ASCII punctuation (Python's `string.punctuation`, as SQuAD) plus every Unicode
 * punctuation character, so that "Kate’s" and "Kate's" both become "kates".
 *
 * @example
 * ```ts
 * normalizeAnswer("The  Eiffel Tower!"); // "eiffel tower"
 * normalizeAnswer("7 May, 2023"); // "7 may 2023"
 * ```
 */
export function normalizeAnswer(text: string): string {
  return text
    .toLowerCase()
    .replace(/[!"#$%&'()*+,\-./:;<=>?@[\\\]^_`{|}~]|\p{P}/gu, "")
    .replace(/\b(a|an|the)\b/g, " ")
    .split(/\s+/)
    .filter((token) => token !== "")
    .join(" ");
}

/**
 * Token-level F1 of a predicted answer against a gold answer after {@link normalizeAnswer}, as in SQuAD
 * and the LoCoMo/EpiCache evaluations: tokens are counted with multiplicity, precision = common /
 * predicted, recall = common / gold. Both empty after normalisation scores 1; one empty scores 0.
 *
 * The EpiCache authors' metric also rewrites number words zero…nine as digits before comparing; this
 * function does not.
 *
 * @example
 * ```ts
 * tokenF1("The Eiffel Tower", "eiffel tower"); // 1
 * tokenF1("in Paris, France", "Paris"); // 0.5 (precision 1/3, recall 1)
 * tokenF1("London", "Paris"); // 0
 * ```
 */
export function tokenF1(prediction: string, gold: string): number {
  const predicted = tokens(prediction);
  const expected = tokens(gold);
  if (predicted.length === 0 || expected.length === 0)
    return predicted.length === expected.length ? 1 : 0;
  const remaining = new Map<string, number>();
  for (const token of expected) remaining.set(token, (remaining.get(token) ?? 0) + 1);
  let common = 0;
  for (const token of predicted) {
    const left = remaining.get(token) ?? 0;
    if (left > 0) {
      common++;
      remaining.set(token, left - 1);
    }
  }
  if (common === 0) return 0;
  const precision = common / predicted.length;
  const recall = common / expected.length;
  return (2 * precision * recall) / (precision + recall);
}

function tokens(text: string): string[] {
  const normalized = normalizeAnswer(text);
  return normalized === "" ? [] : normalized.split(" ");
}

/**
 * BM25's two parameters: `k1`, how soon repeats of a term stop adding to a document's score, and `b`,
 * how much a long document is discounted for its length (0: not at all, 1: fully).
 */
export interface Bm25Parameters {
  readonly k1: number;
  readonly b: number;
}

/**
 * The textbook values (Robertson and Zaragoza's, and Lucene's defaults), not tuned on this project's
 * data: the routing measurements (README, "Routing") would otherwise score a rule fitted to them.
 */
export const BM25_DEFAULTS: Bm25Parameters = { k1: 1.2, b: 0.75 };

/**
 * Okapi BM25 of a query against every document, both as term lists (shared lexicalTerms):
 *
 *   score(d) = Σ over the query's distinct terms t of idf(t) · f·(k1 + 1) / (f + k1·(1 − b + b·|d|/avg|d|))
 *   idf(t)   = ln(1 + (N − df + 0.5) / (df + 0.5))
 *
 * with f the count of t in d, |d| its term count, N the documents and df those holding t. This idf
 * (Lucene's) is positive for every term, however common, so a document scores 0 exactly when it holds
 * none of the query's terms. Repeats in the query count once. The documents are the whole collection:
 * idf and the average length come from them, so one call scores a question against a version's windows.
 *
 * @example
 * ```ts
 * const scores = bm25Scores(["dog", "vet"], [["dog", "park"], ["vet", "dog", "bill"], ["cat"]]);
 * scores[1] > scores[0] && scores[2] === 0; // true: document 1 holds both terms, document 2 neither
 * ```
 */
export function bm25Scores(
  query: readonly string[],
  documents: readonly (readonly string[])[],
  parameters: Bm25Parameters = BM25_DEFAULTS,
): Float64Array {
  const { k1, b } = parameters;
  const scores = new Float64Array(documents.length);
  // The query's distinct terms, numbered.
  const index = new Map<string, number>();
  for (const t of query) if (!index.has(t)) index.set(t, index.size);
  if (index.size === 0 || documents.length === 0) return scores;
  // [documents × terms] counts of the query's terms only, and each term's document frequency.
  const counts = new Uint32Array(documents.length * index.size);
  const df = new Uint32Array(index.size);
  let totalLength = 0;
  documents.forEach((terms, d) => {
    totalLength += terms.length;
    for (const t of terms) {
      const i = index.get(t);
      if (i === undefined) continue;
      if (counts[d * index.size + i]++ === 0) df[i]++;
    }
  });
  const n = documents.length;
  const idf = Array.from(df, (m) => Math.log(1 + (n - m + 0.5) / (m + 0.5)));
  const averageLength = totalLength / n;
  documents.forEach((terms, d) => {
    // Without query terms anywhere (all counts 0) the score stays 0, whatever the lengths.
    const norm = k1 * (1 - b + (averageLength === 0 ? 0 : (b * terms.length) / averageLength));
    let s = 0;
    for (let i = 0; i < index.size; i++) {
      const f = counts[d * index.size + i];
      if (f > 0) s += (idf[i] * f * (k1 + 1)) / (f + norm);
    }
    scores[d] = s;
  });
  return scores;
}

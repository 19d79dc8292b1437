/**
 * Sentence-transformers' mean pooling: the average of a text's token states over its attention
 * mask (padding excluded), then L2-normalised. Sums run in float64 so that the result does not depend
 * on how much padding a batch added.
 */

/**
 * Mean-pools `hidden` ([batch, seq, dim]) over `mask` ([batch, seq], 1 = token, 0 = padding) and
 * L2-normalises each row: `batch` vectors of `dim`. A row whose mask is all zero, or whose mean is
 * the zero vector, cannot be normalised and is a broken invariant (every text has its specials).
 */
export function meanPoolNormalized(
  hidden: Float32Array,
  mask: ArrayLike<bigint | number>,
  batch: number,
  seq: number,
  dim: number,
): Float32Array[] {
  if (hidden.length !== batch * seq * dim || mask.length !== batch * seq) {
    throw new Error(
      `meanPoolNormalized: ${hidden.length} states and ${mask.length} mask entries for [${batch}, ${seq}, ${dim}]`,
    );
  }
  const out: Float32Array[] = [];
  const sum = new Float64Array(dim); // [dim]
  for (let b = 0; b < batch; b++) {
    sum.fill(0);
    let count = 0;
    for (let t = 0; t < seq; t++) {
      if (Number(mask[b * seq + t]) === 0) continue;
      count++;
      const row = (b * seq + t) * dim;
      for (let d = 0; d < dim; d++) sum[d] += hidden[row + d];
    }
    // Dividing by the count before normalising does not change the direction; only the norm matters.
    let norm = 0;
    for (let d = 0; d < dim; d++) norm += sum[d] * sum[d];
    norm = Math.sqrt(norm);
    if (count === 0 || !(norm > 0) || !Number.isFinite(norm)) {
      throw new Error(
        `meanPoolNormalized: row ${b} has ${count} tokens and a mean of norm ${norm / Math.max(count, 1)}`,
      );
    }
    const v = new Float32Array(dim); // [dim], unit norm
    for (let d = 0; d < dim; d++) v[d] = sum[d] / norm;
    out.push(v);
  }
  return out;
}

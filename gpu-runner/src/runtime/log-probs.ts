/**
 * Next-token distributions as log-probabilities, and the KL divergence between two of them: what
 * the evaluation's fidelity and the layer calibration both compare.
 */

/** log softmax of one row of logits, in float64. */
export function logSoftmax(logits: Float32Array): Float64Array {
  let max = -Infinity;
  for (const v of logits) max = Math.max(max, v);
  let sum = 0;
  for (const v of logits) sum += Math.exp(v - max);
  const lse = max + Math.log(sum);
  return Float64Array.from(logits, (v) => v - lse);
}

/** KL(p ‖ q) from log-probabilities (terms where p is below e^−80 left out; never negative). */
export function klDivergence(p: Float64Array, q: Float64Array): number {
  let kl = 0;
  for (let i = 0; i < p.length; i++) if (p[i] > -80) kl += Math.exp(p[i]) * (p[i] - q[i]);
  return Math.max(0, kl);
}

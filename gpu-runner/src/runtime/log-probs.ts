/**
 * Next-token distributions as log-probabilities, and the KL divergence between two of them: what
 * the evaluation's fidelity and the layer calibration both compare.
 */

/**
 * A next-token distribution held as its logits and their log-sum-exp: log p_i = logits[i] − lse (in
 * float64). Half the bytes of the log-probabilities themselves, and no pass to write them out.
 */
export interface LogProbs {
  readonly logits: Float32Array;
  readonly lse: number;
}

/** The distribution of one row of logits (kept as it is, not copied: pass a row no one will change). */
export function logProbs(logits: Float32Array): LogProbs {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i]);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  return { logits, lse: max + Math.log(sum) };
}

/** log p_i of every token, in float64. */
export function logSoftmax(p: LogProbs): Float64Array {
  const out = new Float64Array(p.logits.length);
  for (let i = 0; i < out.length; i++) out[i] = p.logits[i] - p.lse;
  return out;
}

/** KL(p ‖ q) (terms where p is below e^−80 left out; never negative). */
export function klDivergence(p: LogProbs, q: LogProbs): number {
  const a = p.logits;
  const b = q.logits;
  if (a.length !== b.length) throw new Error("klDivergence: distributions of different sizes");
  let kl = 0;
  for (let i = 0; i < a.length; i++) {
    const lp = a[i] - p.lse;
    if (lp > -80) kl += Math.exp(lp) * (lp - (b[i] - q.lse));
  }
  return Math.max(0, kl);
}

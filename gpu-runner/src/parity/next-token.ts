/**
 * Next-token distributions and how far apart two of them are: the measure that says two runtimes
 * compute the same model when their greedy tokens cannot (near ties, different rounding).
 */
import { KvCache, type ChatModel } from "../runtime";

/** softmax(logits) in float64. */
export function softmax(logits: ArrayLike<number>): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i]);
  const p = Float64Array.from(logits as ArrayLike<number>, (v) => Math.exp(v - max));
  let z = 0;
  for (const v of p) z += v;
  for (let i = 0; i < p.length; i++) p[i] /= z;
  return p;
}

/** The largest difference of one token's probability, max_i |p_i − q_i|. */
export function maxProbDiff(p: Float64Array, q: Float64Array): number {
  if (p.length !== q.length)
    throw new Error(`maxProbDiff: ${p.length} against ${q.length} probabilities`);
  let d = 0;
  for (let i = 0; i < p.length; i++) d = Math.max(d, Math.abs(p[i] - q[i]));
  return d;
}

/** The token with the highest probability. */
export function top(p: Float64Array): number {
  let best = 0;
  for (let i = 1; i < p.length; i++) if (p[i] > p[best]) best = i;
  return best;
}

/** This runtime's next-token distribution after `ids`, from an empty cache in one call. */
export async function ourNextToken(
  model: ChatModel,
  ids: readonly number[],
): Promise<Float64Array> {
  const out = await model.decoder.forward(
    ids,
    ids.map((_, i) => i),
    new KvCache(model.config),
    [ids.length - 1],
  );
  return softmax(out.logits);
}

/**
 * The paper's fidelity measure: with the gold answer teacher-forced after the question, the mean
 * over its tokens of KL(p_full ‖ p_method) between the next-token distributions the two caches give.
 */
import type { KvCache, Decoder } from "../runtime";
import { klDivergence, logSoftmax } from "../runtime/log-probs";

export { logSoftmax };

/** Log-probabilities [answer.length][V] of each gold token's position (the cache is not changed). */
export async function teacherForced(
  decoder: Decoder,
  cache: KvCache,
  prompt: readonly number[],
  answer: readonly number[],
): Promise<Float64Array[]> {
  const ids = [...prompt, ...answer.slice(0, -1)];
  const rows = answer.map((_, i) => prompt.length - 1 + i);
  const out = await decoder.forward(
    ids,
    ids.map((_, i) => cache.nextPosition + i),
    cache,
    rows,
  );
  const V = decoder.config.vocabSize;
  return rows.map((_, r) => logSoftmax(out.logits.subarray(r * V, (r + 1) * V)));
}

/**
 * A copy of `cache` holding `prompt` but its last token, with room for the last token and `room`
 * more: the base that every continuation of the prompt (an answer generated, or one teacher-forced
 * with `teacherForced(decoder, base, [last], answer)`) starts from with the prompt's last token, so
 * the prompt is computed once however many continuations there are.
 */
export async function promptBase(
  decoder: Decoder,
  cache: KvCache,
  prompt: readonly number[],
  room: number,
): Promise<KvCache> {
  const base = cache.clone(prompt.length + room);
  const head = prompt.slice(0, -1);
  if (head.length > 0)
    await decoder.prefill(
      head,
      head.map((_, i) => base.nextPosition + i),
      base,
      [head.length - 1],
    );
  return base;
}

/** Mean over positions of KL(p ‖ q), from log-probabilities. */
export function meanKl(p: readonly Float64Array[], q: readonly Float64Array[]): number {
  if (p.length !== q.length) throw new Error("meanKl: different lengths");
  if (p.length === 0) return 0;
  return p.reduce((total, row, t) => total + klDivergence(row, q[t]), 0) / p.length;
}

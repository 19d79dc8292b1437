/**
 * The paper's fidelity measure: with the gold answer teacher-forced after the question, the mean
 * over its tokens of KL(p_full ‖ p_method) between the next-token distributions the two caches give.
 */
import type { KvCache, Decoder } from "../runtime";
import { klDivergence, logProbs, type LogProbs } from "../runtime/log-probs";

/** The distribution at each gold token's position (the cache is not changed). */
export async function teacherForced(
  decoder: Decoder,
  cache: KvCache,
  prompt: readonly number[],
  answer: readonly number[],
): Promise<LogProbs[]> {
  const ids = [...prompt, ...answer.slice(0, -1)];
  const rows = answer.map((_, i) => prompt.length - 1 + i);
  const out = await decoder.forward(
    ids,
    ids.map((_, i) => cache.nextPosition + i),
    cache,
    rows,
  );
  const V = decoder.config.vocabSize;
  return rows.map((_, r) => logProbs(out.logits.subarray(r * V, (r + 1) * V)));
}

/**
 * Runs `use` on `cache` holding `prompt` but its last token, then takes the prompt (and whatever
 * `use` appended) off again: the prompt base every continuation of the prompt starts from with its
 * last token (an answer generated, or one teacher-forced with `teacherForced(decoder, cache, [last],
 * answer)`), so the prompt is computed once however many continuations there are, and the cache is
 * neither copied nor left changed. A cache sized for the prompt and what follows it
 * (`KvCache.fit`) is not resized either.
 */
export async function withPrompt<T>(
  decoder: Decoder,
  cache: KvCache,
  prompt: readonly number[],
  use: (last: number) => Promise<T>,
): Promise<T> {
  const mark = cache.mark();
  try {
    const head = prompt.slice(0, -1);
    if (head.length > 0)
      await decoder.prefill(
        head,
        head.map((_, i) => cache.nextPosition + i),
        cache,
        [head.length - 1],
      );
    return await use(prompt[prompt.length - 1]);
  } finally {
    cache.rewind(mark);
  }
}

/** Mean over positions of KL(p ‖ q). */
export function meanKl(p: readonly LogProbs[], q: readonly LogProbs[]): number {
  if (p.length !== q.length) throw new Error("meanKl: different lengths");
  if (p.length === 0) return 0;
  return p.reduce((total, row, t) => total + klDivergence(row, q[t]), 0) / p.length;
}

/**
 * Where kept entries sit after an eviction. RoPE models attend by relative position and are trained
 * up to a window (SmolLM2: 8,192 tokens); a history longer than that, prefilled with its entries
 * keeping their original positions, has the next block and the question attend across distances
 * the model never saw, and its answers degenerate.
 *
 * "compact" (the default for building): entries keep their original spacing while the window has
 * room for what must still follow (the next block, its scoring prompt, a question and answer). When
 * it has not, after that block's eviction every head's kept entries, still in their original order,
 * move to the positions just before the next token, right-aligned: the cache ends at N − 1 in every
 * head, N the longest head, and what follows continues from N. Right-aligned, every head's newest
 * entry stays next to the new tokens, as it was before the eviction, and the distance to an older
 * entry is the number of kept entries between them (StreamingLLM's rule for positions in the
 * cache). Later blocks keep their own spacing until the window is full again. N is at most the
 * window less what must still follow, so no attention spans more than the window; a head longer
 * than that shares positions between neighbours. Compacting only when needed matters: within the
 * window, compacting after every block raised EpiCache's KL to the full cache from 0.405 to 0.579
 * on LoCoMo conv-26's first 7,000 tokens (README).
 *
 * "original": kept entries keep the positions they had in the history (the paper's setting; right
 * for histories within the window, for comparison beyond it).
 */
import type { KvCache } from "../runtime/kv-cache";
import type { Repositioner } from "../runtime/reposition";

export const POSITION_MODES = ["compact", "original"] as const;
export type PositionMode = (typeof POSITION_MODES)[number];

/** Tokens left after a cache for a question and its answer, beyond which compaction does not place entries. */
export const QUESTION_ROOM = 512;

/**
 * Positions for n entries of a cache that ends before position `end`, in order: right-aligned,
 * `end − n + i`, or squeezed when n > end, `⌊i·end/n⌋` (non-decreasing, neighbours may share).
 *
 * @example compactTargets(3, 10) // Int32Array [7, 8, 9]
 */
export function compactTargets(n: number, end: number): Int32Array {
  const to = new Int32Array(n);
  for (let i = 0; i < n; i++) to[i] = n <= end ? end - n + i : Math.floor((i * end) / n);
  return to;
}

/**
 * Moves every head of `cache` to compact positions ending at N − 1, N = min(longest head, limit),
 * and makes N the next position. Returns N.
 */
export function compactCache(cache: KvCache, mover: Repositioner, limit: number): number {
  if (cache.maxLength === 0) return cache.nextPosition;
  const end = Math.max(1, Math.min(cache.maxLength, limit));
  cache.layers.forEach((layer, l) => {
    for (let h = 0; h < layer.lengths.length; h++)
      mover.move(cache, l, h, compactTargets(layer.lengths[h], end));
  });
  cache.nextPosition = end;
  return end;
}

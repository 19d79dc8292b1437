/**
 * Block-wise prefill with eviction (docs/design.md §1, stage 2): the base every keep policy runs on.
 *
 * The history goes through the decoder in blocks of B tokens. After each block the policy may run
 * a scoring prompt over the cache (its K/V are never kept) whose queries score every retained key; the policy turns
 * that (or anything else it reads from the cache) into one score per entry; the base keeps the top
 * entries of each layer under its budget and gathers them to the front of each head. A layer never
 * holds more than budget·kvHeads + B·kvHeads entries, so prefill memory is flat in the history length.
 * Kept entries keep their original positions, and the next token continues from the history length;
 * or, with `compact`, they move to compact positions after every eviction (positions.ts), so no
 * attention spans more than the model's window however long the history is.
 */
import { EpicacheError } from "@epicache/shared";
import type { Decoder } from "../runtime/decoder";
import type { KvCache } from "../runtime/kv-cache";
import type { Repositioner } from "../runtime/reposition";
import { compactCache, QUESTION_ROOM } from "./positions";

/** What a policy sees of one layer after a block was appended. */
export interface LayerScoring {
  layer: number;
  /**
   * Per KV head, the attention each entry of the head received from the scoring prompt (the cache's
   * entries in order, then the block's tokens); null when the policy appended no prompt.
   */
  attention: Float32Array[] | null;
  /** The cache, the block already appended: entry i of head h is at index i. */
  cache: KvCache;
}

/** A keep policy: what to append after each block, and how to score entries. */
export interface KeepPolicy {
  readonly name: string;
  /** The allocation this policy needs whatever the caller asks (StreamingLLM keeps heads aligned). */
  readonly allocation?: Allocation;
  /**
   * With compact positions, compact after every eviction rather than only when the window needs it:
   * a method whose paper assigns positions within the cache (StreamingLLM).
   */
  readonly positionsInCache?: boolean;
  /** Token ids appended after `block` as the scoring span, or null to score without attention. */
  scoringPrompt(block: readonly number[]): readonly number[] | null;
  /** One score per entry of every head of the layer (higher is kept first). */
  score(layer: LayerScoring): Float32Array[];
}

/** How a layer's budget is spread over its KV heads (see {@link BlockPrefillOptions.allocation}). */
export const ALLOCATIONS = ["headwise", "uniform"] as const;
export type Allocation = (typeof ALLOCATIONS)[number];

export interface BlockPrefillOptions {
  /** Tokens per block (B). */
  blockSize: number;
  /**
   * Per layer, the number of entries to keep per KV head on average (M_ℓ); null keeps everything
   * (no policy is consulted, no scoring prompt is run).
   */
  budgets: readonly number[] | null;
  policy: KeepPolicy | null;
  /**
   * "headwise" (default): the top M_ℓ·kvHeads (head, entry) pairs of the whole layer, so heads end with
   * different lengths (Ada-KV); "uniform": the top M_ℓ of each head.
   */
  allocation?: Allocation;
  /**
   * Called after each block (after eviction) with the cache's total entries, the block's keys as
   * computed (per layer [kvHeads, block, headDim], before any eviction) and its first position.
   */
  onBlock?: (progress: {
    block: number;
    blocks: number;
    entries: number;
    keys: Float32Array[];
    start: number;
  }) => void;
  /** Tokens per forward call within a block (default 128); bounds the graph's transient memory. */
  chunkSize?: number;
  /**
   * Awaited before every model call: a service lets more urgent work (a question) use the model
   * here, so it never waits behind a whole build.
   */
  pause?: () => Promise<void>;
  /**
   * Compact positions (positions.ts): after a block's eviction, when the next block, its scoring
   * prompt and `room` tokens (default {@link QUESTION_ROOM}) for a question and answer would pass
   * `window`, the cache moves to compact positions that end where the next block starts. Until
   * then entries keep their spacing. Absent: original positions always.
   */
  compact?: { window: number; mover: Repositioner; room?: number };
  /**
   * History positions whose next-token logits the caller wants, delivered to `onLogits` as their
   * chunk is computed (calibration compares them between a full and a squeezed prefill).
   */
  logitsAt?: (position: number) => boolean;
  onLogits?: (positions: number[], logits: Float32Array) => void;
}

export interface BlockPrefillResult {
  /** Logits [V] after the last token of the history. */
  logits: Float32Array;
  blocks: number;
  /** Blocks after which a scoring prompt ran (those that took some layer over its budget). */
  scored: number;
  /** The largest position any token fed to the model took (history and scoring prompts). */
  maxPosition: number;
}

/** Feeds `tokens` into `cache` block by block, evicting under the budgets after every block. */
export async function blockPrefill(
  decoder: Decoder,
  cache: KvCache,
  tokens: readonly number[],
  opts: BlockPrefillOptions,
): Promise<BlockPrefillResult> {
  const B = opts.blockSize;
  const L = decoder.config.numLayers;
  if (!Number.isInteger(B) || B < 1)
    throw new EpicacheError("invalid_argument", `block size ${B} is not a positive integer`);
  if (tokens.length === 0)
    throw new EpicacheError("invalid_argument", "block prefill of an empty history");
  if (opts.budgets) {
    if (opts.budgets.length !== L)
      throw new EpicacheError(
        "invalid_argument",
        `${opts.budgets.length} layer budgets for ${L} layers`,
      );
    if (opts.budgets.some((m) => !Number.isInteger(m) || m < 1))
      throw new EpicacheError("invalid_argument", "layer budgets must be positive integers");
    if (!opts.policy) throw new EpicacheError("invalid_argument", "a budget needs a keep policy");
  }
  const blocks = Math.ceil(tokens.length / B);
  if (opts.budgets) {
    // The most a head can hold after a block: all of its layer's budget (head-wise) or its own, plus
    // the block. Sized once per layer, so memory does not depend on how long the history is.
    const heads =
      (opts.policy?.allocation ?? opts.allocation ?? "headwise") === "uniform"
        ? 1
        : decoder.config.numKvHeads;
    opts.budgets.forEach((m, l) => cache.ensureCapacity(l, m * heads + B));
  }
  let logits: Float32Array = new Float32Array(0);
  let maxPosition = cache.nextPosition - 1;
  let scoredBlocks = 0;
  const chunk = opts.chunkSize ?? 128;
  for (let b = 0; b < blocks; b++) {
    const block = tokens.slice(b * B, (b + 1) * B);
    const start = cache.nextPosition;
    // The block goes in in chunks: the graph's transient memory grows with new tokens × cached ones.
    const chunks: Float32Array[][] = [];
    for (let c = 0; c < block.length; c += chunk) {
      const ids = block.slice(c, c + chunk);
      const positions = ids.map((_, i) => start + c + i);
      const wanted = opts.logitsAt
        ? ids.flatMap((_, i) => (i < ids.length - 1 && opts.logitsAt?.(positions[i]) ? [i] : []))
        : [];
      const last = ids.length - 1;
      await opts.pause?.();
      const out = await decoder.forward(ids, positions, cache, [...wanted, last]);
      cache.append(out.keys, out.values, positions);
      maxPosition = Math.max(maxPosition, positions[positions.length - 1]);
      const V = decoder.config.vocabSize;
      logits = wanted.length > 0 ? out.logits.slice(wanted.length * V) : out.logits;
      if (opts.onLogits && opts.logitsAt) {
        const rows = opts.logitsAt(positions[last]) ? [...wanted, last] : wanted;
        if (rows.length > 0)
          opts.onLogits(
            rows.map((i) => positions[i]),
            out.logits.subarray(0, rows.length * V),
          );
      }
      if (opts.onBlock) chunks.push(out.keys);
    }
    if (opts.budgets !== null && opts.policy !== null) {
      const policy = opts.policy;
      const budgets = opts.budgets;
      const allocation = policy.allocation ?? opts.allocation ?? "headwise";
      // The scoring prompt runs over the cache, the block now in it, and is never appended. While
      // every layer is within its budget nothing is evicted whatever the scores (selectKeep keeps a
      // layer within its budget whole), so it is not run: early blocks cost what plain prefill does.
      const evicts = budgets.some((m, l) => overBudget(cache.layers[l].lengths, m, allocation));
      const prompt = evicts ? (policy.scoringPrompt(block) ?? []) : [];
      if (prompt.length > 0) {
        scoredBlocks++;
        await opts.pause?.();
      }
      const scored =
        prompt.length > 0
          ? await decoder.forward(
              prompt,
              prompt.map((_, i) => cache.nextPosition + i),
              cache,
              [prompt.length - 1],
              { scoreSpan: prompt.length },
            )
          : null;
      maxPosition = Math.max(maxPosition, cache.nextPosition + prompt.length - 1);
      for (let l = 0; evicts && l < L; l++) {
        const attention = scored?.scores
          ? headScores(scored.scores[l], cache.layers[l].lengths, scored.pasts[l], prompt.length)
          : null;
        const scores = policy.score({ layer: l, attention, cache });
        cache.keep(l, selectKeep(scores, budgets[l], allocation));
      }
      if (opts.compact) {
        const { window, mover, room = QUESTION_ROOM } = opts.compact;
        const limit = window - B - prompt.length - room;
        if (limit < 1) {
          throw new EpicacheError(
            "invalid_argument",
            `a block of ${B} tokens, a scoring prompt of ${prompt.length} and ${room} for a question leave no room in a window of ${window}`,
          );
        }
        // Original spacing while the window has room for the next block: compaction costs fidelity
        // (README, "Longer than the model's window"), so it happens only when needed.
        if (cache.nextPosition > limit || policy.positionsInCache)
          compactCache(cache, mover, limit);
      }
    }
    if (opts.onBlock) {
      const keys =
        chunks.length === 1
          ? chunks[0]
          : Array.from({ length: L }, (_, l) =>
              concatTokens(
                chunks.map((k) => k[l]),
                decoder.config.numKvHeads,
              ),
            );
      opts.onBlock({ block: b + 1, blocks, entries: cache.entries, keys, start });
    }
  }
  return { logits, blocks, scored: scoredBlocks, maxPosition };
}

/**
 * Tokens of the whole blocks at the start of a history of `length` tokens after which no layer is over
 * its budget however the policy scores (each head then holds every token so far, under any
 * allocation): block-wise prefill evicts nothing there and runs no scoring prompt, so every policy
 * builds the same cache from them. Builds that share a history (one cache per episode) prefill it once.
 */
export function evictionFreeTokens(
  length: number,
  blockSize: number,
  budgets: readonly number[],
): number {
  const blocks = Math.min(
    Math.floor(Math.min(...budgets) / blockSize),
    Math.floor(length / blockSize),
  );
  return Math.max(0, blocks) * blockSize;
}

/** Whether a layer holding `lengths` per head exceeds a budget of `budget` per head (see selectKeep). */
function overBudget(lengths: Int32Array, budget: number, allocation: Allocation): boolean {
  if (allocation === "uniform") return lengths.some((n) => n > budget);
  return lengths.reduce((a, n) => a + n, 0) > budget * lengths.length;
}

/**
 * Per head, the scores of its `lengths[h]` cache entries, out of one layer's graph scores
 * [kvHeads, past + T].
 */
export function headScores(
  scores: Float32Array,
  lengths: Int32Array,
  past: number,
  T: number,
): Float32Array[] {
  const stride = past + T;
  return Array.from(lengths, (n, h) => scores.slice(h * stride, h * stride + n));
}

/** Joins per-call [kvHeads, t_i, D] arrays along the token axis into [kvHeads, Σt_i, D]. */
function concatTokens(parts: Float32Array[], kvHeads: number): Float32Array {
  const total = parts.reduce((n, p) => n + p.length, 0);
  const out = new Float32Array(total);
  const headSize = total / kvHeads;
  for (let h = 0, o = 0; h < kvHeads; h++) {
    for (const p of parts) {
      const n = p.length / kvHeads;
      out.set(p.subarray(h * n, (h + 1) * n), o);
      o += n;
    }
    if (o !== (h + 1) * headSize) throw new Error("concatTokens: ragged parts");
  }
  return out;
}

/**
 * The entries to keep in each head (ascending indices), given one score per entry (NaN counts as the
 * lowest): the top `budget · heads` pairs of the layer ("headwise") or the top `budget` of each head
 * ("uniform"). Ties go to the earlier head, then the earlier entry. A layer within its budget keeps
 * everything.
 */
export function selectKeep(
  scores: readonly Float32Array[],
  budget: number,
  allocation: Allocation,
): Int32Array[] {
  if (allocation === "uniform") return scores.map((s) => topOf([s], budget)[0]);
  return topOf(scores, budget * scores.length);
}

/**
 * The top `k` of the entries of `heads` taken in order (ties to the earlier), as ascending indices per
 * head: every entry above the k-th largest score, then entries equal to it in order until k. A
 * threshold and one pass, not a sort of the pairs (this runs per layer after every block).
 */
function topOf(heads: readonly Float32Array[], k: number): Int32Array[] {
  const total = heads.reduce((n, s) => n + s.length, 0);
  if (total <= k) return heads.map((s) => Int32Array.from({ length: s.length }, (_, i) => i));
  const score = (v: number) => (Number.isNaN(v) ? -Infinity : v);
  const all = new Float32Array(total);
  let at = 0;
  for (const s of heads) for (const v of s) all[at++] = score(v);
  const threshold = all.sort()[total - k];
  let ties = k;
  for (const v of all) if (v > threshold) ties--;
  return heads.map((s) => {
    const keep: number[] = [];
    for (let i = 0; i < s.length; i++) {
      const v = score(s[i]);
      if (v > threshold || (v === threshold && ties-- > 0)) keep.push(i);
    }
    return Int32Array.from(keep);
  });
}

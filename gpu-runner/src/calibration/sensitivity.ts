/**
 * Layer sensitivity (EpiCache §4): how much each layer suffers when the cache is squeezed, the signal
 * that sets per-layer budgets. Two protocols:
 *
 * - "keys", the authors' (apple/ml-epicache data/layer_scores/layer_profile.py): one long text run
 *   twice, with full causal attention and under a windowed mask (blocks of W tokens, each seeing the
 *   last W/2 of the block before and S sink tokens). Per layer, σ_ℓ is the cosine between the two runs'
 *   keys flattened over 100-token spans, averaged over heads and spans. Block-wise prefill under the
 *   sinks + recent keep rule with budget S + W/2 is that mask exactly: the cache a block sees holds
 *   the sinks and the previous block's second half. W is chosen per budget so that S + W/2 = M.
 * - "output": squeeze one layer at a time (block-wise prefill, that layer alone under budget M,
 *   sinks + recent tokens) and measure what reaches the output: the mean next-token KL to the full
 *   run over sampled positions of the text. A layer whose squeeze changes the keys a lot may still
 *   change the predictions little; this measures the predictions.
 */
import type { Decoder } from "../runtime/decoder";
import { KvCache } from "../runtime/kv-cache";
import { klDivergence, logProbs, type LogProbs } from "../runtime/log-probs";
import { blockPrefill, type KeepPolicy } from "../prefill";

/** The authors' span for the flattened key cosine. */
export const KEY_SPAN = 100;

export interface KeySimilarityOptions {
  /** Entries per KV head the windowed run's cache holds: sinks + W/2. */
  budget: number;
  sinks: number;
  /** Sinks + recent tokens (press/streaming-llm.ts) with `sinks` sinks. */
  squeeze: KeepPolicy;
  /** Tokens per flattened span (default {@link KEY_SPAN}). */
  span?: number;
}

/** σ_ℓ of the "keys" protocol, per layer. The block is W = 2·(budget − sinks). */
export async function keySimilarity(
  decoder: Decoder,
  tokens: readonly number[],
  opts: KeySimilarityOptions,
): Promise<number[]> {
  const { numLayers: L, numKvHeads: KV, headDim: D } = decoder.config;
  const W = Math.max(1, 2 * (opts.budget - opts.sinks));
  const span = opts.span ?? KEY_SPAN;
  const spans = Math.ceil(tokens.length / span);
  const full = new KvCache(decoder.config, tokens.length);
  await blockPrefill(decoder, full, tokens, { blockSize: W, budgets: null, policy: null });
  // Per layer, head and span: Σ a·b, Σ a², Σ b² over the span's flattened keys.
  const dot = new Float64Array(L * KV * spans),
    na = new Float64Array(L * KV * spans),
    nb = new Float64Array(L * KV * spans);
  await blockPrefill(decoder, new KvCache(decoder.config), tokens, {
    blockSize: W,
    budgets: Array(L).fill(opts.budget),
    policy: opts.squeeze,
    onBlock: ({ keys, start }) => {
      const T = Math.min(W, tokens.length - start);
      for (let l = 0; l < L; l++) {
        for (let h = 0; h < KV; h++) {
          for (let t = 0; t < T; t++) {
            const at = (l * KV + h) * spans + Math.floor((start + t) / span);
            const a = keys[l].subarray((h * T + t) * D, (h * T + t + 1) * D);
            const slot = full.slot(l, h, start + t) * D;
            const b = full.layers[l].keys.subarray(slot, slot + D);
            for (let d = 0; d < D; d++) {
              dot[at] += a[d] * b[d];
              na[at] += a[d] * a[d];
              nb[at] += b[d] * b[d];
            }
          }
        }
      }
    },
  });
  return Array.from({ length: L }, (_, l) => {
    let sum = 0;
    for (let i = l * KV * spans; i < (l + 1) * KV * spans; i++)
      sum += na[i] > 0 && nb[i] > 0 ? dot[i] / Math.sqrt(na[i] * nb[i]) : 1;
    return sum / (KV * spans);
  });
}

/** Next-token log-probabilities of a full prefill at sampled positions: what squeezed runs are compared with. */
export interface OutputReference {
  tokens: readonly number[];
  blockSize: number;
  /** Position → the distribution of the token after it. */
  logProbs: Map<number, LogProbs>;
}

/**
 * The full run's log-probabilities every `every` positions from `from` on (positions before the
 * first eviction see the same cache in every run and are left out).
 */
export async function outputReference(
  decoder: Decoder,
  tokens: readonly number[],
  opts: { blockSize: number; from: number; every: number },
): Promise<OutputReference> {
  const reference = new Map<number, LogProbs>();
  const V = decoder.config.vocabSize;
  const sampled = (p: number) =>
    p >= opts.from && (p - opts.from) % opts.every === 0 && p < tokens.length - 1;
  await blockPrefill(decoder, new KvCache(decoder.config, tokens.length), tokens, {
    blockSize: opts.blockSize,
    budgets: null,
    policy: null,
    logitsAt: sampled,
    onLogits: (positions, logits) =>
      positions.forEach((p, r) => reference.set(p, logProbs(logits.subarray(r * V, (r + 1) * V)))),
  });
  return { tokens, blockSize: opts.blockSize, logProbs: reference };
}

/** Mean KL(full ‖ squeezed) over the reference's positions, the text prefilled under `budgets` (M_ℓ per layer). */
export async function squeezedKl(
  decoder: Decoder,
  ref: OutputReference,
  budgets: readonly number[],
  squeeze: KeepPolicy,
): Promise<number> {
  const V = decoder.config.vocabSize;
  let total = 0,
    n = 0;
  await blockPrefill(decoder, new KvCache(decoder.config), ref.tokens, {
    blockSize: ref.blockSize,
    budgets,
    policy: squeeze,
    logitsAt: (p) => ref.logProbs.has(p),
    onLogits: (positions, logits) =>
      positions.forEach((p, r) => {
        const p0 = ref.logProbs.get(p) as LogProbs;
        total += klDivergence(p0, logProbs(logits.subarray(r * V, (r + 1) * V)));
        n++;
      }),
  });
  return n > 0 ? total / n : 0;
}

/**
 * The "output" protocol: per layer, the KL when that layer alone is squeezed to `budget` entries
 * per head (every other layer keeps the whole text).
 */
export async function outputSensitivity(
  decoder: Decoder,
  ref: OutputReference,
  budget: number,
  squeeze: KeepPolicy,
  onLayer?: (l: number, kl: number) => void,
): Promise<number[]> {
  const L = decoder.config.numLayers;
  const out: number[] = [];
  for (let l = 0; l < L; l++) {
    const budgets = Array.from({ length: L }, (_, j) => (j === l ? budget : ref.tokens.length));
    out.push(await squeezedKl(decoder, ref, budgets, squeeze));
    onLayer?.(l, out[l]);
  }
  return out;
}

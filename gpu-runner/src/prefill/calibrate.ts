/**
 * Layer sensitivity (EpiCache §4): run a calibration text twice, once with full causal attention and
 * once as block-wise prefill squeezed under the budget by a given policy (sinks + recent tokens,
 * StreamingLLM's keep rule, is what a block prefill's mask looks like without a scorer). Per layer, σ_ℓ is the mean
 * cosine between the two runs' keys of the same tokens, and s_ℓ = 1 − σ_ℓ.
 */
import type { Decoder } from "../model/decoder";
import { KvCache } from "../model/kv-cache";
import { blockPrefill, type KeepPolicy } from "./block-prefill";

export interface SensitivityOptions {
  /** Entries per KV head in the squeezed run (M). */
  budget: number;
  blockSize: number;
  /** The squeeze: sinks + recent tokens (press/streaming-llm.ts), as a block prefill's mask has it. */
  squeeze: KeepPolicy;
}

export interface SensitivityProfile {
  /** σ_ℓ: mean key cosine between the full and the squeezed run, per layer. */
  similarity: number[];
  /** s_ℓ = 1 − σ_ℓ. */
  sensitivity: number[];
  /** Tokens compared per layer and head (those the squeeze could affect). */
  comparedTokens: number;
}

export async function measureSensitivity(decoder: Decoder, tokens: readonly number[], opts: SensitivityOptions): Promise<SensitivityProfile> {
  const { numLayers: L, numKvHeads: KV, headDim: D } = decoder.config;
  // Full causal attention: no eviction; the cache then holds every token's keys in order.
  const full = new KvCache(decoder.config, tokens.length);
  await blockPrefill(decoder, full, tokens, { blockSize: opts.blockSize, budgets: null, policy: null });
  // The squeezed run: compare each block's keys, as computed, with the full run's.
  const sums = new Float64Array(L);
  let compared = 0;
  await blockPrefill(decoder, new KvCache(decoder.config), tokens, {
    blockSize: opts.blockSize, budgets: Array(L).fill(opts.budget), policy: opts.squeeze,
    onBlock: ({ keys, start }) => {
      const T = Math.min(opts.blockSize, tokens.length - start);
      // Tokens before the budget fills see the same context in both runs.
      const first = Math.max(0, opts.budget - start);
      if (first >= T) return;
      compared += T - first;
      for (let l = 0; l < L; l++) {
        const fullKeys = full.layers[l].keys;
        for (let h = 0; h < KV; h++) {
          for (let t = first; t < T; t++) {
            const a = keys[l].subarray((h * T + t) * D, (h * T + t + 1) * D);
            const at = full.slot(l, h, start + t);
            const b = fullKeys.subarray(at * D, (at + 1) * D);
            sums[l] += cosine(a, b) / KV;
          }
        }
      }
    },
  });
  const similarity = Array.from(sums, (s) => (compared > 0 ? s / compared : 1));
  return { similarity, sensitivity: similarity.map((s) => Math.max(0, 1 - s)), comparedTokens: compared };
}

function cosine(a: Float32Array, b: Float32Array): number {
  let dot = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return na > 0 && nb > 0 ? dot / Math.sqrt(na * nb) : 1;
}

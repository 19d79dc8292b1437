/**
 * Moving cached entries to new positions. A key cached at position p carries RoPE's rotation R(p);
 * R(p′) = R(p′ − p)·R(p), so rotating it by the angle of p′ − p gives exactly the key the model would
 * have computed at p′ (values carry no position). This is how a bounded cache keeps every attention
 * inside the model's trained window however long the history grows (prefill/positions.ts).
 */
import { roundToF16 } from "@epicache/shared";
import type { LlamaConfig } from "./config";
import type { KvCache } from "./kv-cache";
import { ropeInvFreq64 } from "./rope";

export interface Repositioner {
  /**
   * Moves the entries of head h of layer l to `to` (one position per entry, in entry order):
   * rotates each key by its move and records the new position.
   */
  move(cache: KvCache, l: number, h: number, to: ArrayLike<number>): void;
}

/**
 * A repositioner for `config`'s RoPE. `f16` rounds the rotated keys to f16 again, for caches whose
 * keys are f16 values (`ggml` numerics keep llama.cpp's f16 cache).
 */
export function repositioner(
  config: Pick<LlamaConfig, "headDim" | "ropeTheta" | "ropeScaling">,
  opts: { f16?: boolean } = {},
): Repositioner {
  const D = config.headDim;
  const half = D / 2;
  const inv = ropeInvFreq64(config);
  const round = opts.f16 ? roundToF16 : (x: number) => x;
  const cos = new Float64Array(half);
  const sin = new Float64Array(half);
  return {
    move(cache, l, h, to) {
      const layer = cache.layers[l];
      const base = h * layer.capacity;
      const n = layer.lengths[h];
      if (to.length !== n) throw new Error(`reposition: ${to.length} positions for ${n} entries`);
      for (let i = 0; i < n; i++) {
        const from = layer.positions[base + i];
        const delta = to[i] - from;
        if (delta === 0) continue;
        for (let j = 0; j < half; j++) {
          const a = delta * inv[j];
          cos[j] = Math.cos(a);
          sin[j] = Math.sin(a);
        }
        // The graph's rotation over the head's halves: (x₁, x₂) → (x₁·cos − x₂·sin, x₁·sin + x₂·cos).
        const k = layer.keys.subarray((base + i) * D, (base + i + 1) * D); // [headDim]
        for (let j = 0; j < half; j++) {
          const x1 = k[j],
            x2 = k[j + half];
          k[j] = round(x1 * cos[j] - x2 * sin[j]);
          k[j + half] = round(x1 * sin[j] + x2 * cos[j]);
        }
        layer.positions[base + i] = to[i];
      }
    },
  };
}

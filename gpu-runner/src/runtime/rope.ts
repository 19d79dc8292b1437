/**
 * RoPE inverse frequencies, θ_i = base^(−2i/D), with Llama 3's frequency-dependent scaling
 * (as transformers' `_compute_llama3_parameters`).
 */
import type { LlamaConfig } from "./config";

export function ropeInvFreq(
  c: Pick<LlamaConfig, "headDim" | "ropeTheta" | "ropeScaling">,
): Float32Array {
  return Float32Array.from(ropeInvFreq64(c));
}

/** {@link ropeInvFreq} in float64, unrounded (for the float64 reference forward). */
export function ropeInvFreq64(
  c: Pick<LlamaConfig, "headDim" | "ropeTheta" | "ropeScaling">,
): Float64Array {
  const half = c.headDim / 2;
  const inv = new Float64Array(half);
  for (let i = 0; i < half; i++) inv[i] = 1 / c.ropeTheta ** ((2 * i) / c.headDim);
  const s = c.ropeScaling;
  if (s?.type === "llama3") {
    const lowWavelen = s.originalMaxPositionEmbeddings / s.lowFreqFactor;
    const highWavelen = s.originalMaxPositionEmbeddings / s.highFreqFactor;
    for (let i = 0; i < half; i++) {
      const wavelen = (2 * Math.PI) / inv[i];
      if (wavelen > lowWavelen) inv[i] = inv[i] / s.factor;
      else if (wavelen >= highWavelen) {
        const smooth =
          (s.originalMaxPositionEmbeddings / wavelen - s.lowFreqFactor) /
          (s.highFreqFactor - s.lowFreqFactor);
        inv[i] = (1 - smooth) * (inv[i] / s.factor) + smooth * inv[i];
      }
    }
  }
  return inv;
}

/**
 * cos and sin of every rotation angle, [T, D/2] each, for tokens at `positions`.
 *
 * "ggml" forms the angles as llama.cpp's CPU RoPE does, θ ← θ·base^(−2/D) step by step in f32
 * (rounding at every step), then takes cos/sin of the f32 angle; "exact" uses the inverse
 * frequencies of {@link ropeInvFreq}. The tables are computed here rather than in the graph so both
 * runtimes see the same f32 angles, not two libraries' cos/sin.
 */
export function ropeTables(
  positions: readonly number[],
  c: Pick<LlamaConfig, "headDim" | "ropeTheta" | "ropeScaling">,
  style: "ggml" | "exact",
  libm?: Float32Array | null,
): { cos: Float32Array; sin: Float32Array } {
  const half = c.headDim / 2;
  const cos = new Float32Array(positions.length * half);
  const sin = new Float32Array(positions.length * half);
  if (style === "ggml" && c.ropeScaling === null) {
    // Positions inside the C library's table (see libm-rope.ts) take its values; others compute.
    const f = Math.fround;
    const thetaScale = f(c.ropeTheta ** (-2 / c.headDim));
    const rows = libm ? libm.length / c.headDim : 0;
    positions.forEach((p, t) => {
      if (libm && Number.isInteger(p) && p >= 0 && p < rows) {
        for (let i = 0; i < half; i++) {
          cos[t * half + i] = libm[(p * half + i) * 2];
          sin[t * half + i] = libm[(p * half + i) * 2 + 1];
        }
        return;
      }
      let theta = f(p);
      for (let i = 0; i < half; i++) {
        cos[t * half + i] = Math.cos(theta);
        sin[t * half + i] = Math.sin(theta);
        theta = f(theta * thetaScale);
      }
    });
    return { cos, sin };
  }
  const inv = ropeInvFreq(c);
  positions.forEach((p, t) => {
    for (let i = 0; i < half; i++) {
      const a = Math.fround(p * inv[i]);
      cos[t * half + i] = Math.cos(a);
      sin[t * half + i] = Math.sin(a);
    }
  });
  return { cos, sin };
}

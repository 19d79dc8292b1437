/**
 * KeyDiff (Park et al. 2025): keep the keys least like the head's average direction; no prompt. The
 * score of a key is minus its cosine to the mean of the head's normalised keys.
 */
import type { KeepPolicy } from "../prefill";

export const keydiffPolicy: KeepPolicy = {
  name: "keydiff",
  scoringPrompt: () => null,
  score: ({ cache, layer }) => {
    const { keys, lengths, capacity } = cache.layers[layer];
    const D = cache.headDim;
    return Array.from(lengths, (n, h) => {
      const base = h * capacity * D;
      const unit = (i: number) => {
        const k = keys.subarray(base + i * D, base + (i + 1) * D);
        let norm = 0;
        for (const v of k) norm += v * v;
        return { k, inv: norm > 0 ? 1 / Math.sqrt(norm) : 0 };
      };
      const mean = new Float64Array(D); // [headDim]
      for (let i = 0; i < n; i++) {
        const { k, inv } = unit(i);
        for (let d = 0; d < D; d++) mean[d] += k[d] * inv;
      }
      let meanNorm = 0;
      for (const v of mean) meanNorm += v * v;
      const invMean = meanNorm > 0 ? 1 / Math.sqrt(meanNorm) : 0;
      const scores = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        const { k, inv } = unit(i);
        let dot = 0;
        for (let d = 0; d < D; d++) dot += k[d] * mean[d];
        scores[i] = -dot * inv * invMean;
      }
      return scores;
    });
  },
};

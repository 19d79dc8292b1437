/**
 * A float64 reference forward pass of the Llama-family decoder, written for clarity, not speed. It
 * reads the same weights as the graph and is what the graph's outputs are checked against.
 */
import type { LlamaConfig } from "../model/config";
import { ropeInvFreq } from "../model/rope";
import type { LayerTensor, WeightSource } from "../model/weights";

export interface ReferenceResult {
  /** [T][V] */
  logits: Float64Array[];
  /** Per layer, [kvHeads][T][headDim], RoPE applied. */
  keys: Float64Array[][][];
  values: Float64Array[][][];
  /**
   * With a scoring span of S > 0: per layer, [kvHeads][T − S], the largest softmax attention any
   * span query of the head's group gives each earlier token, the softmax over those T − S tokens.
   */
  scores: Float64Array[][] | null;
}

/** x · Wᵀ for W stored [out, in]. */
function linear(x: Float64Array, w: Float32Array, out: number, bias?: Float32Array): Float64Array {
  const n = x.length;
  const y = new Float64Array(out);
  for (let o = 0; o < out; o++) {
    let s = bias ? bias[o] : 0;
    for (let i = 0; i < n; i++) s += x[i] * w[o * n + i];
    y[o] = s;
  }
  return y;
}

function rmsNorm(x: Float64Array, w: Float32Array, eps: number): Float64Array {
  let ss = 0;
  for (const v of x) ss += v * v;
  const inv = 1 / Math.sqrt(ss / x.length + eps);
  return x.map((v, i) => v * inv * w[i]);
}

function rope(x: Float64Array, pos: number, inv: Float32Array): Float64Array {
  const half = x.length / 2;
  const y = new Float64Array(x.length);
  for (let i = 0; i < half; i++) {
    const a = pos * inv[i];
    const c = Math.cos(a), s = Math.sin(a);
    y[i] = x[i] * c - x[i + half] * s;
    y[i + half] = x[i + half] * c + x[i] * s;
  }
  return y;
}

/**
 * Runs `tokens` at `positions` from an empty cache, causally; the last `scoreSpan` tokens are the
 * scoring span.
 */
export function referenceForward(
  weights: WeightSource,
  tokens: readonly number[],
  positions: readonly number[] = tokens.map((_, i) => i),
  scoreSpan = 0,
): ReferenceResult {
  const c: LlamaConfig = weights.config;
  const E = c.hiddenSize, H = c.numHeads, KV = c.numKvHeads, D = c.headDim, F = c.intermediateSize, V = c.vocabSize;
  const G = H / KV;
  const T = tokens.length;
  const inv = ropeInvFreq(c);
  const emb = weights.global("tokenEmbedding");
  let xs: Float64Array[] = tokens.map((t) => Float64Array.from(emb.subarray(t * E, (t + 1) * E)));
  const keys: Float64Array[][][] = [];
  const values: Float64Array[][][] = [];
  const scores: Float64Array[][] = [];
  for (let l = 0; l < c.numLayers; l++) {
    const w = (n: LayerTensor) => weights.layer(l, n);
    const [wq, wk, wv, wo] = [w("wq"), w("wk"), w("wv"), w("wo")];
    const [bq, bk, bv] = c.qkvBias ? [w("bq"), w("bk"), w("bv")] : [undefined, undefined, undefined];
    const [qn, kn] = c.qkNorm ? [w("qNorm"), w("kNorm")] : [undefined, undefined];
    const [attnNorm, ffnNorm, wGate, wUp, wDown] = [w("attnNorm"), w("ffnNorm"), w("wGate"), w("wUp"), w("wDown")];
    const qs: Float64Array[][] = []; // [T][H] of [D]
    const K: Float64Array[][] = Array.from({ length: KV }, () => []);
    const Vv: Float64Array[][] = Array.from({ length: KV }, () => []);
    for (let t = 0; t < T; t++) {
      const h = rmsNorm(xs[t], attnNorm, c.rmsNormEps);
      const q = linear(h, wq, H * D, bq), k = linear(h, wk, KV * D, bk), v = linear(h, wv, KV * D, bv);
      const head = (a: Float64Array, i: number, norm?: Float32Array) => {
        const x = a.slice(i * D, (i + 1) * D);
        return rope(norm ? rmsNorm(x, norm, c.rmsNormEps) : x, positions[t], inv);
      };
      qs.push(Array.from({ length: H }, (_, i) => head(q, i, qn)));
      for (let j = 0; j < KV; j++) {
        K[j].push(head(k, j, kn));
        Vv[j].push(v.slice(j * D, (j + 1) * D));
      }
    }
    keys.push(K);
    values.push(Vv);
    if (scoreSpan > 0) {
      const Tn = T - scoreSpan;
      const best = Array.from({ length: KV }, () => new Float64Array(Tn));
      for (let t = Tn; t < T; t++) {
        for (let i = 0; i < H; i++) {
          const j = Math.floor(i / G);
          const p = new Float64Array(Tn);
          let max = -Infinity;
          for (let s = 0; s < Tn; s++) {
            let dot = 0;
            for (let d = 0; d < D; d++) dot += qs[t][i][d] * K[j][s][d];
            max = Math.max(max, (p[s] = dot / Math.sqrt(D)));
          }
          let sum = 0;
          for (let s = 0; s < Tn; s++) sum += p[s] = Math.exp(p[s] - max);
          for (let s = 0; s < Tn; s++) best[j][s] = Math.max(best[j][s], p[s] / sum);
        }
      }
      scores.push(best);
    }
    const next: Float64Array[] = [];
    for (let t = 0; t < T; t++) {
      const ctx = new Float64Array(H * D);
      for (let i = 0; i < H; i++) {
        const j = Math.floor(i / G);
        const scores = new Float64Array(t + 1);
        let max = -Infinity;
        for (let s = 0; s <= t; s++) {
          let dot = 0;
          for (let d = 0; d < D; d++) dot += qs[t][i][d] * K[j][s][d];
          scores[s] = dot / Math.sqrt(D);
          max = Math.max(max, scores[s]);
        }
        let sum = 0;
        for (let s = 0; s <= t; s++) sum += scores[s] = Math.exp(scores[s] - max);
        for (let s = 0; s <= t; s++) for (let d = 0; d < D; d++) ctx[i * D + d] += (scores[s] / sum) * Vv[j][s][d];
      }
      const x = Float64Array.from(xs[t]);
      const o = linear(ctx, wo, E);
      for (let e = 0; e < E; e++) x[e] += o[e];
      const h2 = rmsNorm(x, ffnNorm, c.rmsNormEps);
      const gate = linear(h2, wGate, F), up = linear(h2, wUp, F);
      const act = gate.map((g, i) => (g / (1 + Math.exp(-g))) * up[i]);
      const down = linear(act, wDown, E);
      for (let e = 0; e < E; e++) x[e] += down[e];
      next.push(x);
    }
    xs = next;
  }
  const norm = weights.global("outputNorm");
  const out = weights.global("output");
  const logits = xs.map((x) => linear(rmsNorm(x, norm, c.rmsNormEps), out, V));
  return { logits, keys, values, scores: scoreSpan > 0 ? scores : null };
}

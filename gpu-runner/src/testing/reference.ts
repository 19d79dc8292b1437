/**
 * A float64 reference forward pass of the Llama-family decoder, written for clarity, not speed. It
 * reads the same weights as the graph and is what the graph's outputs are checked against: on tiny
 * generated checkpoints, and on the real model (`reference-parity.test.ts`), where a prompt of a few
 * hundred tokens takes seconds because each weight row is read once for all tokens.
 */
import type { LlamaConfig } from "../runtime/config";
import { ropeInvFreq64 } from "../runtime/rope";
import type { LayerTensor, WeightSource } from "../runtime/weights";

export interface ReferenceResult {
  /** [R][V]: the logits of the rows asked for (every token by default). */
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

/**
 * x · Wᵀ for every row x of `xs`, W stored [out, in]. Each weight row is read once for all rows, four
 * rows at a time (it stays in cache); every sum still runs bias first, then over `in` in order.
 */
function linear(
  xs: readonly Float64Array[],
  w: Float32Array,
  out: number,
  bias?: Float32Array,
): Float64Array[] {
  const n = xs[0]?.length ?? 0;
  const T = xs.length;
  const ys = xs.map(() => new Float64Array(out));
  for (let o = 0; o < out; o++) {
    const row = w.subarray(o * n, (o + 1) * n);
    const b = bias ? bias[o] : 0;
    let t = 0;
    for (; t + 4 <= T; t += 4) {
      const [x0, x1, x2, x3] = [xs[t], xs[t + 1], xs[t + 2], xs[t + 3]];
      let s0 = b,
        s1 = b,
        s2 = b,
        s3 = b;
      for (let i = 0; i < n; i++) {
        const r = row[i];
        s0 += x0[i] * r;
        s1 += x1[i] * r;
        s2 += x2[i] * r;
        s3 += x3[i] * r;
      }
      ys[t][o] = s0;
      ys[t + 1][o] = s1;
      ys[t + 2][o] = s2;
      ys[t + 3][o] = s3;
    }
    for (; t < T; t++) {
      const x = xs[t];
      let s = b;
      for (let i = 0; i < n; i++) s += x[i] * row[i];
      ys[t][o] = s;
    }
  }
  return ys;
}

function rmsNorm(x: Float64Array, w: Float32Array, eps: number): Float64Array {
  let ss = 0;
  for (const v of x) ss += v * v;
  const inv = 1 / Math.sqrt(ss / x.length + eps);
  return x.map((v, i) => v * inv * w[i]);
}

function rope(x: Float64Array, pos: number, inv: Float64Array): Float64Array {
  const half = x.length / 2;
  const y = new Float64Array(x.length);
  for (let i = 0; i < half; i++) {
    const a = pos * inv[i];
    const c = Math.cos(a),
      s = Math.sin(a);
    y[i] = x[i] * c - x[i + half] * s;
    y[i + half] = x[i + half] * c + x[i] * s;
  }
  return y;
}

/**
 * Runs `tokens` at `positions` from an empty cache, causally; the last `scoreSpan` tokens are the
 * scoring span; logits for the rows in `logitRows` (default every token).
 */
export function referenceForward(
  weights: WeightSource,
  tokens: readonly number[],
  positions: readonly number[] = tokens.map((_, i) => i),
  scoreSpan = 0,
  logitRows: readonly number[] = tokens.map((_, i) => i),
): ReferenceResult {
  const c: LlamaConfig = weights.config;
  const E = c.hiddenSize,
    H = c.numHeads,
    KV = c.numKvHeads,
    D = c.headDim,
    F = c.intermediateSize,
    V = c.vocabSize;
  const G = H / KV;
  const T = tokens.length;
  const inv = ropeInvFreq64(c);
  const emb = weights.global("tokenEmbedding");
  let xs: Float64Array[] = tokens.map((t) => Float64Array.from(emb.subarray(t * E, (t + 1) * E)));
  const keys: Float64Array[][][] = [];
  const values: Float64Array[][][] = [];
  const scores: Float64Array[][] = [];
  for (let l = 0; l < c.numLayers; l++) {
    const w = (n: LayerTensor) => weights.layer(l, n);
    const [wq, wk, wv, wo] = [w("wq"), w("wk"), w("wv"), w("wo")];
    const [bq, bk, bv] = c.qkvBias
      ? [w("bq"), w("bk"), w("bv")]
      : [undefined, undefined, undefined];
    const [qn, kn] = c.qkNorm ? [w("qNorm"), w("kNorm")] : [undefined, undefined];
    const [attnNorm, ffnNorm, wGate, wUp, wDown] = [
      w("attnNorm"),
      w("ffnNorm"),
      w("wGate"),
      w("wUp"),
      w("wDown"),
    ];
    const qs: Float64Array[][] = []; // [T][H] of [D]
    const K: Float64Array[][] = Array.from({ length: KV }, () => []);
    const Vv: Float64Array[][] = Array.from({ length: KV }, () => []);
    const hs = xs.map((x) => rmsNorm(x, attnNorm, c.rmsNormEps)); // [T][E]
    const q = linear(hs, wq, H * D, bq),
      k = linear(hs, wk, KV * D, bk),
      v = linear(hs, wv, KV * D, bv);
    for (let t = 0; t < T; t++) {
      const head = (a: Float64Array, i: number, norm?: Float32Array) => {
        const x = a.slice(i * D, (i + 1) * D);
        return rope(norm ? rmsNorm(x, norm, c.rmsNormEps) : x, positions[t], inv);
      };
      qs.push(Array.from({ length: H }, (_, i) => head(q[t], i, qn)));
      for (let j = 0; j < KV; j++) {
        K[j].push(head(k[t], j, kn));
        Vv[j].push(v[t].slice(j * D, (j + 1) * D));
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
    const ctxs: Float64Array[] = [];
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
        for (let s = 0; s <= t; s++)
          for (let d = 0; d < D; d++) ctx[i * D + d] += (scores[s] / sum) * Vv[j][s][d];
      }
      ctxs.push(ctx);
    }
    const o = linear(ctxs, wo, E);
    const mid = xs.map((x, t) => x.map((v, e) => v + o[t][e])); // [T][E], after attention
    const h2 = mid.map((x) => rmsNorm(x, ffnNorm, c.rmsNormEps));
    const gate = linear(h2, wGate, F),
      up = linear(h2, wUp, F);
    const act = gate.map((g, t) => g.map((gi, i) => (gi / (1 + Math.exp(-gi))) * up[t][i]));
    const down = linear(act, wDown, E);
    const next = mid.map((x, t) => x.map((v, e) => v + down[t][e]));
    xs = next;
  }
  const norm = weights.global("outputNorm");
  const out = weights.global("output");
  const logits = linear(
    logitRows.map((t) => rmsNorm(xs[t], norm, c.rmsNormEps)),
    out,
    V,
  );
  return { logits, keys, values, scores: scoreSpan > 0 ? scores : null };
}

/**
 * `weights` with every tensor dequantised once and kept (about 4 bytes per parameter), for running the
 * reference over several prompts of a real model.
 */
export function keptWeights(weights: WeightSource): WeightSource {
  const kept = new Map<string, Float32Array>();
  const keep = (key: string, read: () => Float32Array) => {
    let t = kept.get(key);
    if (!t) kept.set(key, (t = read()));
    return t;
  };
  return {
    config: weights.config,
    fingerprint: weights.fingerprint,
    global: (name) => keep(name, () => weights.global(name)),
    layer: (index, name) => keep(`${index}.${name}`, () => weights.layer(index, name)),
    storage: (name, layer) => weights.storage(name, layer),
    blocks: (name, layer) => weights.blocks(name, layer),
    close: () => weights.close(),
  };
}

/**
 * The Llama-family decoder as an ONNX graph (opset 17, standard operators only).
 *
 * Inputs
 *   input_ids      int64 [T]              new tokens
 *   positions      int64 [T]              their absolute positions (RoPE)
 *   logits_index   int64 [N]              which of the T rows produce logits
 *   past_lengths   int64 [L, kvH]         valid entries per layer and KV head
 *   past_key_ℓ     f32   [kvH, P, D]      per layer; entries at or beyond past_lengths[ℓ, h] are padding
 *   past_value_ℓ   f32   [kvH, P, D]
 * Outputs
 *   logits         f32   [N, V]
 *   present_key_ℓ  f32   [kvH, T, D]      the new tokens' keys, RoPE applied
 *   present_value_ℓ f32  [kvH, T, D]
 *
 * New tokens attend to every valid past entry and causally to each other. Past keys carry their
 * RoPE already, so where they sit in the buffer does not matter: heads may hold different numbers
 * of entries, from different original positions.
 */
import { GraphBuilder, DType } from "../onnx/builder";
import type { LlamaConfig } from "./config";
import { ropeInvFreq } from "./rope";
import type { WeightSource } from "./weights";

export const DECODER_GRAPH_VERSION = 1;
export const OPSET = 17;

export interface DecoderGraph {
  model: Uint8Array;
  external: ReturnType<GraphBuilder["build"]>["external"];
}

export function buildDecoderGraph(weights: WeightSource, externalFile: string): DecoderGraph {
  const c = weights.config;
  const g = new GraphBuilder(externalFile);
  const E = c.hiddenSize, H = c.numHeads, KV = c.numKvHeads, D = c.headDim, F = c.intermediateSize;
  const G = H / KV; // query heads per KV head
  const L = c.numLayers;

  // ── inputs ────────────────────────────────────────────────────────────────
  const ids = g.input("input_ids", DType.int64, ["T"]);
  const positions = g.input("positions", DType.int64, ["T"]);
  const logitsIndex = g.input("logits_index", DType.int64, ["N"]);
  const pastLengths = g.input("past_lengths", DType.int64, [L, KV]);

  // ── weights ───────────────────────────────────────────────────────────────
  const embd = g.weight("token_embd", [c.vocabSize, E], () => weights.global("tokenEmbedding")); // [V, E]
  const outW = c.tiedEmbeddings ? embd : g.weight("output", [c.vocabSize, E], () => weights.global("output")); // [V, E]

  // ── shared per call: sequence length, RoPE tables, causal part of the mask ──
  const T = g.node("Shape", [ids]); // [1]
  const Tsc = g.node("Squeeze", [T, g.ints([0])]); // scalar
  const posF = g.node("Cast", [positions], { to: DType.float }); // [T]
  const freqs = g.node("Mul", [g.node("Unsqueeze", [posF, g.ints([1])]), g.floats(ropeInvFreq(c), [1, D / 2])]); // [T, D/2]
  const emb = g.node("Concat", [freqs, freqs], { axis: 1 }); // [T, D]
  const cos = g.node("Unsqueeze", [g.node("Cos", [emb]), g.ints([0])]); // [1, T, D]
  const sin = g.node("Unsqueeze", [g.node("Sin", [emb]), g.ints([0])]); // [1, T, D]
  const r = g.node("Range", [g.int(0), Tsc, g.int(1)]); // [T]
  const causal = g.node("LessOrEqual", [g.node("Unsqueeze", [r, g.ints([0])]), g.node("Unsqueeze", [r, g.ints([1])])]); // [T(q), T(k)]: k ≤ q
  const causalKV = g.node("Expand", [g.node("Unsqueeze", [causal, g.ints([0])]), g.node("Concat", [g.ints([KV]), T, T], { axis: 0 })]); // [KV, T, T]
  const zero = g.float(0);
  const negInf = g.float(-Infinity);
  const scale = g.float(1 / Math.sqrt(D));

  const rmsNorm = (x: string, w: string, eps: number) => {
    // x / sqrt(mean(x²) + eps) · w over the last axis, as llama.cpp (multiply by the reciprocal).
    const ms = g.node("ReduceMean", [g.node("Mul", [x, x])], { axes: [-1], keepdims: 1 });
    const inv = g.node("Reciprocal", [g.node("Sqrt", [g.node("Add", [ms, g.float(eps)])])]);
    return g.node("Mul", [g.node("Mul", [x, inv]), w]);
  };
  const rotate = (x: string) => {
    // x·cos + rotate_half(x)·sin, rotate_half(x) = [−x₂, x₁] over the last axis.   x: [heads, T, D]
    const [x1, x2] = g.nodeN("Split", [x, g.ints([D / 2, D / 2])], 2, { axis: -1 });
    const rot = g.node("Concat", [g.node("Neg", [x2]), x1], { axis: -1 });
    return g.node("Add", [g.node("Mul", [x, cos]), g.node("Mul", [rot, sin])]);
  };

  // ── token embedding ───────────────────────────────────────────────────────
  let x = g.node("Gather", [embd, ids], { axis: 0 }); // [T, E]

  for (let l = 0; l < L; l++) {
    const w = (name: Parameters<WeightSource["layer"]>[1], dims: number[]) =>
      g.weight(`l${l}.${name}`, dims, () => weights.layer(l, name));
    const pastK = g.input(`past_key_${l}`, DType.float, [KV, `P${l}`, D]);
    const pastV = g.input(`past_value_${l}`, DType.float, [KV, `P${l}`, D]);

    // ── attention ──
    const h = rmsNorm(x, w("attnNorm", [E]), c.rmsNormEps); // [T, E]
    // q, k and v projections in one GEMM: weights stacked [H·D + 2·KV·D, E].
    const wqkv = g.weight(`l${l}.wqkv`, [(H + 2 * KV) * D, E], () =>
      concat([weights.layer(l, "wq"), weights.layer(l, "wk"), weights.layer(l, "wv")]),
    );
    let qkv = g.node("Gemm", [h, wqkv], { transB: 1 }); // [T, (H+2KV)·D]
    if (c.qkvBias) {
      const b = g.weight(`l${l}.bqkv`, [(H + 2 * KV) * D], () =>
        concat([weights.layer(l, "bq"), weights.layer(l, "bk"), weights.layer(l, "bv")]),
      );
      qkv = g.node("Add", [qkv, b]);
    }
    const [q0, k0, v0] = g.nodeN("Split", [qkv, g.ints([H * D, KV * D, KV * D])], 3, { axis: 1 });
    let q = g.node("Transpose", [g.node("Reshape", [q0, g.ints([-1, H, D])])], { perm: [1, 0, 2] }); // [H, T, D]
    let k = g.node("Transpose", [g.node("Reshape", [k0, g.ints([-1, KV, D])])], { perm: [1, 0, 2] }); // [KV, T, D]
    const v = g.node("Transpose", [g.node("Reshape", [v0, g.ints([-1, KV, D])])], { perm: [1, 0, 2] }); // [KV, T, D]
    if (c.qkNorm) {
      q = rmsNorm(q, w("qNorm", [D]), c.rmsNormEps);
      k = rmsNorm(k, w("kNorm", [D]), c.rmsNormEps);
    }
    q = rotate(q);
    k = rotate(k);
    g.output(k, `present_key_${l}`, DType.float, [KV, "T", D]);
    g.output(v, `present_value_${l}`, DType.float, [KV, "T", D]);

    const kAll = g.node("Concat", [pastK, k], { axis: 1 }); // [KV, P+T, D]
    const vAll = g.node("Concat", [pastV, v], { axis: 1 }); // [KV, P+T, D]

    // Mask [KV, 1, T, P+T]: past entry j of head h is valid iff j < past_lengths[l, h].
    const P = g.node("Gather", [g.node("Shape", [pastK]), g.int(1)], { axis: 0 }); // scalar
    const rp = g.node("Range", [g.int(0), P, g.int(1)]); // [P]
    const len = g.node("Gather", [pastLengths, g.int(l)], { axis: 0 }); // [KV]
    const pastValid = g.node("Less", [g.node("Unsqueeze", [rp, g.ints([0])]), g.node("Unsqueeze", [len, g.ints([1])])]); // [KV, P]
    const pastValidT = g.node("Expand", [g.node("Unsqueeze", [pastValid, g.ints([1])]), g.node("Concat", [g.ints([KV]), T, g.node("Unsqueeze", [P, g.ints([0])])], { axis: 0 })]); // [KV, T, P]
    const valid = g.node("Concat", [pastValidT, causalKV], { axis: 2 }); // [KV, T, P+T]
    const mask = g.node("Unsqueeze", [g.node("Where", [valid, zero, negInf]), g.ints([1])]); // [KV, 1, T, P+T]

    // Grouped-query attention: query heads h·G … h·G+G−1 read KV head h.
    const qg = g.node("Reshape", [g.node("Mul", [q, scale]), g.ints([KV, G, -1, D])]); // [KV, G, T, D]
    const kT = g.node("Unsqueeze", [g.node("Transpose", [kAll], { perm: [0, 2, 1] }), g.ints([1])]); // [KV, 1, D, P+T]
    const scores = g.node("Add", [g.node("MatMul", [qg, kT]), mask]); // [KV, G, T, P+T]
    const probs = g.node("Softmax", [scores], { axis: -1 }); // [KV, G, T, P+T]
    const ctx = g.node("MatMul", [probs, g.node("Unsqueeze", [vAll, g.ints([1])])]); // [KV, G, T, D]
    const ctxT = g.node("Reshape", [g.node("Transpose", [g.node("Reshape", [ctx, g.ints([H, -1, D])])], { perm: [1, 0, 2] }), g.ints([-1, H * D])]); // [T, H·D]
    x = g.node("Add", [x, g.node("Gemm", [ctxT, w("wo", [E, H * D])], { transB: 1 })]); // [T, E]

    // ── SwiGLU MLP ──
    const h2 = rmsNorm(x, w("ffnNorm", [E]), c.rmsNormEps); // [T, E]
    const wgu = g.weight(`l${l}.wgateup`, [2 * F, E], () => concat([weights.layer(l, "wGate"), weights.layer(l, "wUp")]));
    const [gate, up] = g.nodeN("Split", [g.node("Gemm", [h2, wgu], { transB: 1 }), g.ints([F, F])], 2, { axis: 1 }); // [T, F] ×2
    const act = g.node("Mul", [g.node("Mul", [gate, g.node("Sigmoid", [gate])]), up]); // [T, F]
    x = g.node("Add", [x, g.node("Gemm", [act, w("wDown", [E, F])], { transB: 1 })]); // [T, E]
  }

  // ── head: final norm on the requested rows, then the vocabulary projection ──
  const rows = g.node("Gather", [x, logitsIndex], { axis: 0 }); // [N, E]
  const hn = rmsNorm(rows, g.weight("output_norm", [E], () => weights.global("outputNorm")), c.rmsNormEps);
  const logits = g.node("Gemm", [hn, outW], { transB: 1 }); // [N, V]
  g.output(logits, "logits", DType.float, ["N", c.vocabSize]);

  return g.build({ opset: OPSET, producer: `epicache-decoder-v${DECODER_GRAPH_VERSION}` });
}

function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

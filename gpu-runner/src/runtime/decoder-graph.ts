/**
 * The Llama-family decoder as an ONNX graph (opset 17, and onnxruntime's FusedMatMul and MatMulNBits).
 *
 * Inputs
 *   input_ids      int64 [T]              new tokens
 *   rope_cos       f32   [T, D/2]         cos of each rotation angle at the tokens' positions
 *   rope_sin       f32   [T, D/2]         (see rope.ts: positions live outside the graph)
 *   logits_index   int64 [N]              which of the T rows produce logits
 *   past_lengths   int64 [L, kvH]         valid entries per layer and KV head
 *   past_key_ℓ     f32   [kvH, P, D]      per layer; entries at or beyond past_lengths[ℓ, h] are padding
 *   past_value_ℓ   f32   [kvH, P, D]
 *   score_len      int64 [1]              S: the last S new tokens are the scoring span (0: none)
 *   attn_chunk     int64 [1]              exact/fast numerics: 0 attends over the whole cache at once,
 *                                         C > 0 in chunks of C entries (chunked-attention.ts)
 * Outputs
 *   logits         f32   [N, V]
 *   present_key_ℓ  f32   [kvH, T, D]      the new tokens' keys, RoPE applied
 *   present_value_ℓ f32  [kvH, T, D]
 *   scores_ℓ       f32   [kvH, P+T]       per key: the largest attention any span query of the
 *                                         head's GQA group gives it, the softmax running over the
 *                                         valid past entries and the first T−S new tokens only (the
 *                                         span's own keys left out); 0 for padding and for the
 *                                         span's own entries. With S = 0 there is nothing to read:
 *                                         zeros, or [kvH, 0] from a decoding step
 *
 * New tokens attend to every valid past entry and causally to each other. Past keys carry their
 * RoPE already, so where they sit in the buffer does not matter: heads may hold different numbers
 * of entries, from different original positions.
 *
 * Control flow (exact and fast numerics). The graph is one If over two bodies that share the weights:
 * a decoding step (attn_chunk = 0 and S = 0) runs a body with no control flow of its own, whose
 * attention is one pass over the cache; every other call runs a body that attends in chunks or
 * scores a span. ggml numerics have one body.
 *
 * Numerics. "exact" computes in f32 throughout. "fast" is "exact" with Q4_1/Q8_0 matrices kept
 * quantised and multiplied with int8 activations (MatMulNBits), as llama.cpp's CPU kernels do, but
 * not in their order, and RMSNorm and RoPE as onnxruntime's fused operators (SimplifiedLayerNormalization,
 * RotaryEmbedding): the numerics for serving and building caches on CPU. "ggml" computes as llama.cpp's CPU backend does on
 * x86 with AVX-512 (see ggml-ops.ts), so that a GGUF model generates what llama.cpp generates:
 * Q4_1/Q8_0 products through its integer block kernels on Q8-quantised activations; keys, values,
 * queries and attention probabilities rounded to f16 (its default cache type and what its f16
 * products take); attention dot products added in the order of its single-token and batched
 * kernels; its vectorised expf in SiLU and softmax; RMSNorm sums in f64; RoPE angles stepped in
 * f32 with the C library's cosf/sinf and the rotation's multiply-adds fused as the compiler fuses
 * them. It is several times slower than "exact".
 */
import { GraphBuilder, DType, type Dim } from "../onnx/builder";
import type { LlamaConfig } from "./config";
import { chunkedAttention } from "./chunked-attention";
import { GgmlOps, laneDot, padAxisTo } from "./ggml-ops";
import type { GlobalTensor, LayerTensor, QuantBlocks, WeightSource } from "./weights";

export const DECODER_GRAPH_VERSION = 24;

/** The arithmetic a decoder graph computes in (see above). */
export const NUMERICS = ["ggml", "exact", "fast"] as const;
export type Numerics = (typeof NUMERICS)[number];
export const OPSET = 17;

export interface DecoderGraph {
  model: Uint8Array;
  external: ReturnType<GraphBuilder["build"]>["external"];
}

export function buildDecoderGraph(
  weights: WeightSource,
  externalFile: string,
  numerics: Numerics,
): DecoderGraph {
  const c = weights.config;
  const g = new GraphBuilder(externalFile);
  const L = c.numLayers,
    KV = c.numKvHeads,
    D = c.headDim;

  // ── inputs ────────────────────────────────────────────────────────────────
  const inputs: DecoderInputs = {
    ids: g.input("input_ids", DType.int64, ["T"]),
    ropeCos: g.input("rope_cos", DType.float, ["T", D / 2]),
    ropeSin: g.input("rope_sin", DType.float, ["T", D / 2]),
    logitsIndex: g.input("logits_index", DType.int64, ["N"]),
    pastLengths: g.input("past_lengths", DType.int64, [L, KV]),
    scoreLen: g.input("score_len", DType.int64, [1]),
    attnChunk: g.input("attn_chunk", DType.int64, [1]),
    pastK: [],
    pastV: [],
  };
  for (let l = 0; l < L; l++) {
    inputs.pastK.push(g.input(`past_key_${l}`, DType.float, [KV, `P${l}`, D]));
    inputs.pastV.push(g.input(`past_value_${l}`, DType.float, [KV, `P${l}`, D]));
  }

  // ── outputs, in the order `forward` returns them ────────────────────────────
  const outputs: Array<[name: string, shape: Dim[]]> = [["logits", ["N", c.vocabSize]]];
  for (let l = 0; l < L; l++)
    outputs.push(
      [`present_key_${l}`, [KV, "T", D]],
      [`present_value_${l}`, [KV, "T", D]],
      [`scores_${l}`, [KV, "PT"]],
    );

  if (numerics === "ggml") {
    // llama.cpp's arithmetic in one body: it never attends in chunks, and its attention picks its
    // kernel (single token or batch) and the span's scores inside.
    forward(g, weights, inputs, numerics, "any").forEach((v, i) =>
      g.output(v, outputs[i][0], DType.float, outputs[i][1]),
    );
  } else {
    // Two bodies under one If, sharing the weights (the main graph's initializers): a decoding step
    // (no chunks, no scoring span) attends over the cache in one pass and scores nothing; a call
    // that attends in chunks or scores a span (prefill, block-wise prefill) runs the other. One
    // branch per call instead of one per layer: a decoding step runs no control flow of its own.
    const positive = (x: string) => g.node("Greater", [x, g.ints([0])]); // [1] bool
    const step = g.node("Not", [
      g.node("Or", [positive(inputs.attnChunk), positive(inputs.scoreLen)]),
    ]); // [1] bool
    const body = (mode: BodyMode) =>
      g.subgraph((sb) =>
        forward(sb, weights, inputs, numerics, mode).forEach((v, i) =>
          sb.outputValue(v, DType.float, outputs[i][1]),
        ),
      );
    g.nodeN(
      "If",
      [step],
      outputs.length,
      { then_branch: { graph: body("step") }, else_branch: { graph: body("prefill") } },
      outputs.map(([name]) => name),
    );
    for (const [name, shape] of outputs) g.output(name, name, DType.float, shape);
  }

  // Contrib operators (com.microsoft): FusedMatMul in f32 attention; MatMulNBits, RotaryEmbedding and
  // SkipSimplifiedLayerNormalization in fast numerics (SimplifiedLayerNormalization is onnxruntime's
  // too, in the default domain).
  return g.build({
    opset: OPSET,
    producer: `epicache-decoder-v${DECODER_GRAPH_VERSION}-${numerics}`,
    msOpset: 1,
  });
}

/** The graph's inputs (see the module comment). */
interface DecoderInputs {
  ids: string;
  ropeCos: string;
  ropeSin: string;
  logitsIndex: string;
  pastLengths: string;
  scoreLen: string;
  attnChunk: string;
  /** Per layer. */
  pastK: string[];
  pastV: string[];
}

/**
 * Which calls a body serves: "step" decoding steps and other calls without chunks or a scoring span,
 * "prefill" calls with either, "any" every call (ggml numerics).
 */
type BodyMode = "step" | "prefill" | "any";

/**
 * The decoder, on `g`: the logits, then per layer the new keys, values and scores, in the order of
 * the graph's outputs.
 */
function forward(
  g: GraphBuilder,
  weights: WeightSource,
  inputs: DecoderInputs,
  numerics: Numerics,
  mode: BodyMode,
): string[] {
  const c = weights.config;
  const E = c.hiddenSize,
    H = c.numHeads,
    KV = c.numKvHeads,
    D = c.headDim,
    F = c.intermediateSize;
  const G = H / KV; // query heads per KV head
  const L = c.numLayers;
  const { ids, ropeCos, ropeSin } = inputs;

  // ── shared per call: sequence length, RoPE tables, causal part of the mask ──
  const T = g.node("Shape", [ids]); // [1]
  const Tsc = g.node("Squeeze", [T, g.ints([0])]); // scalar
  const cos = g.node("Unsqueeze", [g.node("Concat", [ropeCos, ropeCos], { axis: 1 }), g.ints([0])]); // [1, T, D]
  const sin = g.node("Unsqueeze", [g.node("Concat", [ropeSin, ropeSin], { axis: 1 }), g.ints([0])]); // [1, T, D]
  const r = g.node("Range", [g.int(0), Tsc, g.int(1)]); // [T]
  const causal = g.node("LessOrEqual", [
    g.node("Unsqueeze", [r, g.ints([0])]),
    g.node("Unsqueeze", [r, g.ints([1])]),
  ]); // [T(q), T(k)]: k ≤ q
  const causalKV = g.node("Expand", [
    g.node("Unsqueeze", [causal, g.ints([0])]),
    g.node("Concat", [g.ints([KV]), T, T], { axis: 0 }),
  ]); // [KV, T, T]
  // Scoring: the span is the last S new tokens; its queries see the first T−S new tokens.
  const S = g.node("Squeeze", [inputs.scoreLen, g.ints([0])]); // scalar
  const Tn = g.node("Sub", [Tsc, S]); // scalar
  const scoring = g.node("Greater", [S, g.int(0)]); // scalar bool
  const newScored = g.node("Expand", [
    g.node("Unsqueeze", [g.node("Less", [r, Tn]), g.ints([0])]),
    g.node("Concat", [g.ints([KV]), T], { axis: 0 }),
  ]); // [KV, T]
  // Exact and fast numerics: 0 attends over the whole cache at once; C > 0 in chunks of C entries.
  const chunk = g.node("Squeeze", [inputs.attnChunk, g.ints([0])]); // scalar
  const chunked = g.node("Greater", [chunk, g.int(0)]); // scalar bool

  // The f32 embedding [V, E], made on first use: fast numerics gather rows from its Q8_0 blocks instead.
  let embdF32: string | null = null;
  const embd = () =>
    (embdF32 ??= g.weight("token_embd", [c.vocabSize, E], () => weights.global("tokenEmbedding"))); // [V, E]
  // f32 attention's shapes that depend on T only, and the causal bias: made once per call, on first use.
  let f32: F32Shapes | null = null;
  const f32Shapes = () =>
    (f32 ??= (() => {
      const dims = (...d: Array<number | string>) => shapeOf(g, d);
      const GT = g.node("Mul", [g.ints([G]), T]); // [1]
      return {
        GT,
        qRows: dims(KV, GT, D),
        newScores: dims(KV, G, T, T),
        pNew: dims(KV, GT, T),
        newBias: g.node("Unsqueeze", [g.node("Where", [causalKV, zero, negInf]), g.ints([1])]), // [KV, 1, T, T]
      };
    })());
  const zero = g.float(0);
  const negInf = g.float(-Infinity);
  let scale: string | null = null;
  const ctx: GraphContext = {
    g,
    weights,
    c,
    mode,
    ropeCos,
    ropeSin,
    cos,
    sin,
    T,
    Tsc,
    Tn,
    causal,
    causalKV,
    zero,
    negInf,
    get scale() {
      return (scale ??= g.float(1 / Math.sqrt(D))); // made on first use (a decoding step scales in its product)
    },
    scoring,
    chunk,
    chunked,
    embd,
    f32Shapes,
  };
  // The arithmetic, chosen once: every product, norm, rotation and attention below goes through it.
  const num = NUMERICS_OPS[numerics](ctx);
  const results: string[] = [];

  // ── token embedding ───────────────────────────────────────────────────────
  let x = num.embed(ids); // [T, E]: the residual stream
  let pending: string | null = null; // [T, E]: the last block's output, not yet added to x

  for (let l = 0; l < L; l++) {
    const w = (name: Parameters<WeightSource["layer"]>[1], dims: number[]) =>
      g.weight(`l${l}.${name}`, dims, () => weights.layer(l, name));
    const pastK = inputs.pastK[l];
    const pastV = inputs.pastV[l];

    // ── attention ──
    let h: string;
    [x, h] = num.addNorm(x, pending, w("attnNorm", [E]), c.rmsNormEps); // x += pending; h = RMSNorm(x): [T, E]
    // q, k and v projections in one product: weights stacked [H·D + 2·KV·D, E].
    let qkv = num.linear(h, `l${l}.wqkv`, ["wq", "wk", "wv"], l, E, (H + 2 * KV) * D); // [T, (H+2KV)·D]
    if (c.qkvBias) {
      const b = g.weight(`l${l}.bqkv`, [(H + 2 * KV) * D], () =>
        concat([weights.layer(l, "bq"), weights.layer(l, "bk"), weights.layer(l, "bv")]),
      );
      qkv = g.node("Add", [qkv, b]);
    }
    const [q0, k0, v0] = g.nodeN("Split", [qkv, g.ints([H * D, KV * D, KV * D])], 3, { axis: 1 }); // [T, H·D], [T, KV·D] ×2
    let q = heads(g, q0, H, D); // [H, T, D]
    let k = heads(g, k0, KV, D); // [KV, T, D]
    const v = num.round(heads(g, v0, KV, D)); // [KV, T, D]
    if (c.qkNorm) {
      q = num.rmsNorm(q, w("qNorm", [D]), c.rmsNormEps);
      k = num.rmsNorm(k, w("kNorm", [D]), c.rmsNormEps);
    }
    q = num.round(num.rotate(q)); // [H, T, D]
    k = num.round(num.rotate(k)); // [KV, T, D]

    // Past entry j of head h is valid iff j < past_lengths[l, h].
    const P = g.node("Gather", [g.node("Shape", [pastK]), g.int(1)], { axis: 0 }); // scalar
    const len = g.node("Gather", [inputs.pastLengths, g.int(l)], { axis: 0 }); // [KV]
    const pastValid = g.node("Less", [
      g.node("Unsqueeze", [g.node("Range", [g.int(0), P, g.int(1)]), g.ints([0])]),
      g.node("Unsqueeze", [len, g.ints([1])]),
    ]); // [KV, P]
    let keys: string | null = null;
    const keyValid = () => (keys ??= g.node("Concat", [pastValid, newScored], { axis: 1 })); // [KV, P+T]: keys a span may score
    // Grouped-query attention: query heads h·G … h·G+G−1 read KV head h.
    const qg = g.node("Reshape", [q, g.ints([KV, G, -1, D])]); // [KV, G, T, D]
    const [att, scores] = num.attention({ l, qg, k, v, pastK, pastV, P, len, pastValid, keyValid }); // [H, T, D], [KV, P+T]
    results.push(k, v, scores);

    const attT = g.node("Reshape", [
      g.node("Transpose", [att], { perm: [1, 0, 2] }),
      g.ints([-1, H * D]),
    ]); // [T, H·D]
    const o = num.linear(attT, `l${l}.wo`, ["wo"], l, H * D, E); // [T, E]

    // ── SwiGLU MLP ──
    let h2: string;
    [x, h2] = num.addNorm(x, o, w("ffnNorm", [E]), c.rmsNormEps); // x += o; h2 = RMSNorm(x): [T, E]
    const [gate, up] = g.nodeN(
      "Split",
      [num.linear(h2, `l${l}.wgateup`, ["wGate", "wUp"], l, E, 2 * F), g.ints([F, F])],
      2,
      { axis: 1 },
    ); // [T, F] ×2
    pending = num.linear(num.swiglu(gate, up), `l${l}.wDown`, ["wDown"], l, F, E); // [T, E]
  }

  // ── head: final norm on the requested rows, then the vocabulary projection ──
  const last = pending === null ? x : g.node("Add", [x, pending]); // [T, E]
  const rows = g.node("Gather", [last, inputs.logitsIndex], { axis: 0 }); // [N, E]
  const hn = num.rmsNorm(
    rows,
    g.weight("output_norm", [E], () => weights.global("outputNorm")),
    c.rmsNormEps,
  ); // [N, E]
  return [num.head(hn), ...results]; // [N, V], then per layer [KV, T, D] ×2 and [KV, P+T]
}

/** A shape tensor [d.length] int64 from constants and [1] tensors. */
function shapeOf(g: GraphBuilder, d: Array<number | string>): string {
  return g.node(
    "Concat",
    d.map((x) => (typeof x === "number" ? g.ints([x]) : x)),
    { axis: 0 },
  );
}

/** [T, n·D] → [n, T, D]: one row of D per head. */
function heads(g: GraphBuilder, x: string, n: number, D: number): string {
  return g.node("Transpose", [g.node("Reshape", [x, g.ints([-1, n, D])])], { perm: [1, 0, 2] });
}

/** What every numerics' operations build on: the graph, the weights and the per-call tensors. */
interface GraphContext {
  g: GraphBuilder;
  weights: WeightSource;
  c: LlamaConfig;
  /** The calls this body serves. */
  mode: BodyMode;
  /** The inputs rope_cos and rope_sin [T, D/2], and the same as [1, T, D] (each half repeated). */
  ropeCos: string;
  ropeSin: string;
  cos: string;
  sin: string;
  /** T as [1] and as a scalar; T − S, the tokens before the scoring span (scalar). */
  T: string;
  Tsc: string;
  Tn: string;
  /** [T, T] and [KV, T, T] bool: key ≤ query among the new tokens. */
  causal: string;
  causalKV: string;
  zero: string;
  negInf: string;
  /** 1/√D. */
  scale: string;
  /** Scalar bools: a scoring span is marked; attention runs in chunks (of `chunk` entries, a scalar). */
  scoring: string;
  chunk: string;
  chunked: string;
  /** The f32 embedding initializer [V, E], made on first use (a tied head reads it). */
  embd: () => string;
  /** f32 attention's per-call shapes and causal bias, made on first use. */
  f32Shapes: () => F32Shapes;
}

/** Shape tensors ([4] or [3] int64) and the causal bias of the new tokens, shared by every layer. */
interface F32Shapes {
  /** G·T [1]. */
  GT: string;
  /** [KV, G·T, D], [KV, G, T, T], [KV, G·T, T]. */
  qRows: string;
  newScores: string;
  pNew: string;
  /** 0 or −∞ [KV, 1, T, T]: key ≤ query among the new tokens. */
  newBias: string;
}

/** One layer's attention inputs. */
interface AttentionInputs {
  l: number;
  /** Queries by KV head [KV, G, T, D]; the new keys and values [KV, T, D]. */
  qg: string;
  k: string;
  v: string;
  /** The cache [KV, P, D] each, its length P (scalar), valid entries per head [KV], and validity [KV, P]. */
  pastK: string;
  pastV: string;
  P: string;
  len: string;
  pastValid: string;
  /** Keys a scoring span may score [KV, P+T] bool, made on demand (calls without a span need none). */
  keyValid: () => string;
}

type WeightName = Parameters<WeightSource["storage"]>[0];

/** The arithmetic a decoder graph computes in: one object per numerics (see the module comment). */
interface NumericsOps {
  /** The token embeddings of `ids` [T] (int64).   → [T, E] */
  embed(ids: string): string;
  /** x · Wᵀ where W [out, K] stacks the rows of `parts`, stored under the initializer name `key`.   x: [T, K] → [T, out] */
  linear(
    x: string,
    key: string,
    parts: WeightName[],
    layer: number | undefined,
    K: number,
    out: number,
  ): string;
  /** x / √(mean(x²) + ε) · w over the last axis. */
  rmsNorm(x: string, w: string, eps: number): string;
  /** The residual stream x plus a block's output (none: x as it is) and its RMSNorm.   [T, E] → [sum, normed] */
  addNorm(x: string, delta: string | null, w: string, eps: number): [string, string];
  /** RoPE: x·cos + rotate_half(x)·sin.   x: [heads, T, D] */
  rotate(x: string): string;
  /** Rounding to what llama.cpp stores (f16 in ggml numerics; none otherwise). */
  round(x: string): string;
  /** silu(gate) · up.   [T, F] */
  swiglu(gate: string, up: string): string;
  /** One layer's attention: the context by query head [H, T, D] and the scores output [KV, P+T]. */
  attention(a: AttentionInputs): [string, string];
  /** The vocabulary projection.   [N, E] → [N, V] */
  head(hn: string): string;
}

const NUMERICS_OPS: Record<Numerics, (ctx: GraphContext) => NumericsOps> = {
  exact: exactOps,
  fast: fastOps,
  ggml: ggmlOps,
};

/** The stacked rows of `parts`, of one storage type or "mixed". */
function storageOf(weights: WeightSource, parts: WeightName[], layer: number | undefined): string {
  const types = new Set(parts.map((p) => weights.storage(p, layer)));
  return types.size === 1 ? [...types][0] : "mixed";
}

/** The f32 rows of `parts`, stacked. */
function readRows(
  weights: WeightSource,
  parts: WeightName[],
  layer: number | undefined,
): () => Float32Array {
  return () =>
    concat(
      parts.map((p) =>
        layer === undefined
          ? weights.global(p as GlobalTensor)
          : weights.layer(layer, p as LayerTensor),
      ),
    );
}

/** f32 throughout. */
function exactOps(ctx: GraphContext): NumericsOps {
  const { g, weights, c } = ctx;
  const linear: NumericsOps["linear"] = (x, key, parts, layer, K, out) =>
    g.node("Gemm", [x, g.weight(key, [out, K], readRows(weights, parts, layer))], { transB: 1 });
  const rmsNorm: NumericsOps["rmsNorm"] = (x, w, eps) => {
    const ms = g.node("ReduceMean", [g.node("Mul", [x, x])], { axes: [-1], keepdims: 1 });
    return g.node("Mul", [
      g.node("Mul", [
        x,
        g.node("Reciprocal", [g.node("Sqrt", [g.node("Add", [ms, g.float(eps)])])]),
      ]),
      w,
    ]);
  };
  return {
    embed: (ids) => g.node("Gather", [ctx.embd(), ids], { axis: 0 }),
    linear,
    rmsNorm,
    addNorm: (x, delta, w, eps) => {
      const sum = delta === null ? x : g.node("Add", [x, delta]);
      return [sum, rmsNorm(sum, w, eps)];
    },
    rotate: (x) => {
      const [x1, x2] = g.nodeN("Split", [x, g.ints([c.headDim / 2, c.headDim / 2])], 2, {
        axis: -1,
      });
      const rot = g.node("Concat", [g.node("Neg", [x2]), x1], { axis: -1 }); // rotate_half(x) = [−x₂, x₁]
      return g.node("Add", [g.node("Mul", [x, ctx.cos]), g.node("Mul", [rot, ctx.sin])]);
    },
    round: (x) => x,
    swiglu: (gate, up) => g.node("Mul", [g.node("Mul", [gate, g.node("Sigmoid", [gate])]), up]),
    attention: (a) => f32Attention(ctx, a),
    // A tied head reads the embedding initializer instead of storing it twice.
    head: (hn) =>
      c.tiedEmbeddings
        ? g.node("Gemm", [hn, ctx.embd()], { transB: 1 })
        : linear(hn, "output", ["output"], undefined, c.hiddenSize, c.vocabSize),
  };
}

/** "exact" with Q4_1 and Q8_0 matrices kept quantised and multiplied with int8 activations (MatMulNBits). */
function fastOps(ctx: GraphContext): NumericsOps {
  const { g, weights, c } = ctx;
  const exact = exactOps(ctx);
  const linear: NumericsOps["linear"] = (x, key, parts, layer, K, out) => {
    const type = storageOf(weights, parts, layer);
    if (type !== "Q4_1" && type !== "Q8_0") return exact.linear(x, key, parts, layer, K, out);
    return matMulNBits(g, x, key, K, out, type, () =>
      stackBlocks(parts.map((p) => weights.blocks(p, layer))),
    );
  };
  return {
    ...exact,
    linear,
    // One fused operator each instead of seven (a norm) and six (a rotation) small ones: a decoding
    // step runs some 3,000 operators, and each small one costs more to dispatch than to compute.
    rmsNorm: (x, w, eps) =>
      g.node("SimplifiedLayerNormalization", [x, w], { axis: -1, epsilon: { float: eps } }),
    // The residual addition and the norm after it in one operator, which returns both.
    addNorm: (x, delta, w, eps) => {
      if (delta === null)
        return [
          x,
          g.node("SimplifiedLayerNormalization", [x, w], { axis: -1, epsilon: { float: eps } }),
        ];
      const [normed, , , sum] = g.nodeN(
        "SkipSimplifiedLayerNormalization",
        [delta, x, w],
        4,
        { epsilon: { float: eps } },
        [null, "", "", null], // the normed rows and the sum; no mean or inverse deviation
        "com.microsoft",
      );
      return [sum, normed];
    },
    rotate: (x) =>
      g.node("Squeeze", [
        g.node(
          "RotaryEmbedding",
          [g.node("Unsqueeze", [x, g.ints([0])]), g.ints([0]), ctx.ropeCos, ctx.ropeSin],
          { interleaved: 0 },
          undefined,
          "com.microsoft",
        ), // [1, heads, T, D]: the rows of the tables in order (positions are the tables' rows)
        g.ints([0]),
      ]),
    // A tied Q8_0 head goes through MatMulNBits too (a quarter of the f32 embedding's bytes per token).
    head: (hn) =>
      c.tiedEmbeddings && weights.storage("output") !== "Q8_0"
        ? g.node("Gemm", [hn, ctx.embd()], { transB: 1 })
        : linear(hn, "output", ["output"], undefined, c.hiddenSize, c.vocabSize),
    // A Q8_0 embedding: the rows' codes and block scales, dequantised in the graph (code · d is exact
    // in f32, so the rows equal the f32 table's) instead of a [V, E] f32 table four times the size.
    embed: (ids) =>
      weights.storage("tokenEmbedding") === "Q8_0"
        ? q8Rows(
            g,
            ids,
            c.vocabSize,
            c.hiddenSize,
            () => weights.blocks("tokenEmbedding") as QuantBlocks,
          )
        : exact.embed(ids),
  };
}

/** As llama.cpp's CPU backend computes on x86 with AVX-512 (see the module comment and ggml-ops.ts). */
function ggmlOps(ctx: GraphContext): NumericsOps {
  const { g, weights, c } = ctx;
  const D = c.headDim;
  const ops = new GgmlOps(g);
  const linear: NumericsOps["linear"] = (x, key, parts, layer, K, out) => {
    const type = storageOf(weights, parts, layer);
    // Q4_1 and Q8_0 through llama.cpp's integer block kernels.
    if (type === "Q4_1" || type === "Q8_0")
      return ops.quantizedMatmul(x, key, K, out, type, () =>
        stackBlocks(parts.map((p) => weights.blocks(p, layer))),
      );
    const w = g.weight(key, [out, K], readRows(weights, parts, layer));
    if (type === "F32") return g.node("Gemm", [x, w], { transB: 1 });
    // f16 matrices take x rounded to f16; other quantised types x quantised to Q8 per block.
    if (type === "F16" || type === "BF16") return g.node("Gemm", [ops.f16(x), w], { transB: 1 });
    const a = ops.quantizeQ8(x, K);
    return g.node(
      "Gemm",
      [g.node("Reshape", [g.node("Mul", [a.codes, a.d]), g.ints([-1, K])]), w],
      { transB: 1 },
    );
  };
  // Multiplying by the reciprocal, with the f32 squares summed in f64, as ggml does.
  const rmsNorm: NumericsOps["rmsNorm"] = (x, w, eps) => {
    const sq = g.node("Mul", [x, x]);
    const sum = g.node("ReduceSum", [g.node("Cast", [sq], { to: DType.double }), g.ints([-1])], {
      keepdims: 1,
    });
    const n = g.node("Cast", [g.node("Gather", [g.node("Shape", [sq]), g.int(-1)], { axis: 0 })], {
      to: DType.double,
    });
    const ms = g.node("Cast", [g.node("Div", [sum, n])], { to: DType.float });
    return g.node("Mul", [
      g.node("Mul", [
        x,
        g.node("Reciprocal", [g.node("Sqrt", [g.node("Add", [ms, g.float(eps)])])]),
      ]),
      w,
    ]);
  };
  return {
    embed: (ids) => g.node("Gather", [ctx.embd(), ids], { axis: 0 }),
    linear,
    rmsNorm,
    addNorm: (x, delta, w, eps) => {
      const sum = delta === null ? x : g.node("Add", [x, delta]);
      return [sum, rmsNorm(sum, w, eps)];
    },
    rotate: (x) => {
      // llama.cpp's rotate_pairs as the compiler contracts it: the first product of each line fused,
      // dst₀ = fma(x₀, cos, −x₁·sin), dst₁ = fma(x₀, sin, x₁·cos).
      const [x1, x2] = g.nodeN("Split", [x, g.ints([D / 2, D / 2])], 2, { axis: -1 });
      const [c1] = g.nodeN("Split", [ctx.cos, g.ints([D / 2, D / 2])], 2, { axis: -1 });
      const [s1] = g.nodeN("Split", [ctx.sin, g.ints([D / 2, D / 2])], 2, { axis: -1 });
      const lo = ops.fma(x1, c1, g.node("Neg", [g.node("Mul", [x2, s1])]));
      const hi = ops.fma(x1, s1, g.node("Mul", [x2, c1]));
      return g.node("Concat", [lo, hi], { axis: -1 });
    },
    round: (x) => ops.f16(x),
    swiglu: (gate, up) => ops.swiglu(gate, up),
    attention: (a) => [wholeAttention(ctx, g, a, true), spanScoresIfAny(ctx, g, a)],
    // A Q8_0 head takes llama.cpp's plain CPU kernel (the head shares the embedding tensor, which stays out of the AMX buffer).
    head: (hn) =>
      weights.storage("output") === "Q8_0"
        ? ops.q8VecDot(
            hn,
            "output",
            c.hiddenSize,
            c.vocabSize,
            () => weights.blocks("output") as QuantBlocks,
          )
        : linear(hn, "output", ["output"], undefined, c.hiddenSize, c.vocabSize),
  };
}

/**
 * Attention in f32 (exact and fast numerics). A decoding step attends over the whole cache at once
 * and scores nothing; a prefill call attends in chunks of `attn_chunk` entries (chunked-attention.ts)
 * or, with no chunks (then it scores a span), over the whole cache, chosen per call.
 */
function f32Attention(ctx: GraphContext, a: AttentionInputs): [string, string] {
  const { g, c } = ctx;
  const H = c.numHeads,
    KV = c.numKvHeads,
    G = c.numHeads / c.numKvHeads,
    D = c.headDim;
  if (ctx.mode === "step") return [wholeAttention(ctx, g, a, false), noScores(g, KV)];
  const branch = (kind: "direct" | "chunked") =>
    g.subgraph((sb) => {
      let out: [string, string];
      if (kind === "direct") out = [wholeAttention(ctx, sb, a, false), spanScores(ctx, sb, a)];
      else {
        const [att, scores] = chunkedAttention(
          sb,
          {
            qs: sb.node("Mul", [a.qg, ctx.scale]),
            k: a.k,
            v: a.v,
            pastK: a.pastK,
            pastV: a.pastV,
            len: a.len,
            causal: ctx.causal,
            T: ctx.Tsc,
            Tn: ctx.Tn,
            T1: ctx.T,
            chunk: ctx.chunk,
            scoring: ctx.scoring,
            keyValid: a.keyValid(),
          },
          KV,
          G,
          D,
          `l${a.l}`,
        ); // [KV, G, T, D], [KV, P+T]
        out = [sb.node("Reshape", [att, sb.ints([H, -1, D])]), scores];
      }
      sb.output(out[0], `${kind}_ctx_${a.l}`, DType.float, [H, "T", D]);
      sb.output(out[1], `${kind}_scores_${a.l}`, DType.float, [KV, "PT"]);
    });
  const [att, scores] = g.nodeN("If", [ctx.chunked], 2, {
    then_branch: { graph: branch("chunked") },
    else_branch: { graph: branch("direct") },
  });
  return [att, scores];
}

/** The scores output of a call without a scoring span: empty, [KV, 0] (the caller reads none). */
function noScores(g: GraphBuilder, KV: number): string {
  return g.node("ConstantOfShape", [g.ints([KV, 0])], {
    value: { tensor: new Float32Array([0]), dims: [1] },
  });
}

/**
 * The whole cache at once, one softmax over the cache's entries and the new tokens. In f32 (exact,
 * fast) the cache is read where it lies: the products with the cache and with the new tokens are
 * separate (keys read transposed by the product itself), and only their scores are joined, so a step
 * copies no cache; the context is the sum of the two products with values. ggml numerics join keys
 * and values first, as llama.cpp's kernels see them. Returns the context by query head [H, T, D].
 */
function wholeAttention(
  ctx: GraphContext,
  sb: GraphBuilder,
  a: AttentionInputs,
  ggml: boolean,
): string {
  const { c } = ctx;
  const H = c.numHeads,
    KV = c.numKvHeads,
    G = c.numHeads / c.numKvHeads,
    D = c.headDim;
  let att: string; // [H, T, D]
  // Past validity as the query rows see it (ggml joins it with the causal part of the new tokens).
  const pastValidT = () =>
    sb.node("Expand", [
      sb.node("Unsqueeze", [a.pastValid, sb.ints([1])]),
      sb.node("Concat", [sb.ints([KV]), ctx.T, sb.node("Unsqueeze", [a.P, sb.ints([0])])], {
        axis: 0,
      }),
    ]); // [KV, T, P]
  if (!ggml) {
    // The G query heads of a KV head are one matrix of G·T rows: each product reads a head's keys
    // (and values) once for all of them, rather than once per query head as a broadcast would.
    // Shapes that depend only on T come once per call (ctx.f32Shapes); every dimension is spelled
    // out (allowzero), so an empty cache (P = 0) is a dimension of 0.
    const s = ctx.f32Shapes();
    const reshape = (x: string, shape: string) => sb.node("Reshape", [x, shape], { allowzero: 1 });
    const Pv = sb.node("Unsqueeze", [a.P, sb.ints([0])]); // [1]
    const dims = (...d: Array<number | string>) => shapeOf(sb, d);
    const qRows = reshape(a.qg, s.qRows); // [KV, G·T, D]
    const scaled = (keys: string) =>
      sb.node(
        "FusedMatMul",
        [qRows, keys],
        { transB: 1, alpha: { float: 1 / Math.sqrt(D) } },
        undefined,
        "com.microsoft",
      ); // [KV, G·T, n]
    // Padding is the same for every query row: a [KV, 1, 1, P] bias broadcasts over G and T.
    const pastBias = sb.node("Unsqueeze", [
      sb.node("Where", [a.pastValid, ctx.zero, ctx.negInf]),
      sb.ints([1, 2]),
    ]); // [KV, 1, 1, P]
    // A decoding step halves each head's entries (its buffers hold an even number, kv-cache.ts): MLAS
    // runs each of the KV heads' products on one thread, so three heads on two threads leave one
    // thread idle a third of the time, where six half-products share them evenly.
    const halves = ctx.mode === "step";
    const P2 = halves ? sb.node("Div", [Pv, sb.ints([2])]) : ""; // [1]: P/2
    const pastScores = halves
      ? reshape(
          sb.node(
            "Transpose",
            [
              sb.node(
                "FusedMatMul",
                [
                  sb.node("Unsqueeze", [qRows, sb.ints([1])]),
                  sb.node("Reshape", [a.pastK, sb.ints([KV, 2, -1, D])]),
                ],
                { transB: 1, alpha: { float: 1 / Math.sqrt(D) } },
                undefined,
                "com.microsoft",
              ), // [KV, 2, G·T, P/2]
            ],
            { perm: [0, 2, 1, 3] },
          ), // [KV, G·T, 2, P/2]
          dims(KV, G, ctx.T, Pv),
        )
      : reshape(scaled(a.pastK), dims(KV, G, ctx.T, Pv)); // [KV, G, T, P]
    const scoresPast = sb.node("Add", [pastScores, pastBias]); // [KV, G, T, P]
    const scoresNew = sb.node("Add", [reshape(scaled(a.k), s.newScores), s.newBias]); // [KV, G, T, T]
    const probs = sb.node("Softmax", [sb.node("Concat", [scoresPast, scoresNew], { axis: -1 })], {
      axis: -1,
    }); // [KV, G, T, P+T]
    const [pPast, pNew] = sb.nodeN("Split", [probs, dims(Pv, ctx.T)], 2, { axis: -1 }); // [KV, G, T, P], [KV, G, T, T]
    const pastContext = halves
      ? sb.node(
          "ReduceSum",
          [
            sb.node("MatMul", [
              sb.node("Transpose", [reshape(pPast, dims(KV, s.GT, 2, P2))], { perm: [0, 2, 1, 3] }), // [KV, 2, G·T, P/2]
              sb.node("Reshape", [a.pastV, sb.ints([KV, 2, -1, D])]), // [KV, 2, P/2, D]
            ]), // [KV, 2, G·T, D]
            sb.ints([1]),
          ],
          { keepdims: 0 },
        )
      : sb.node("MatMul", [reshape(pPast, dims(KV, s.GT, Pv)), a.pastV]); // [KV, G·T, D]
    att = reshape(
      sb.node("Add", [pastContext, sb.node("MatMul", [reshape(pNew, s.pNew), a.v])]), // [KV, G·T, D]: query head h·G + g at rows g·T …
      sb.ints([H, -1, D]),
    ); // [H, T, D]
  } else {
    const kAll = sb.node("Concat", [a.pastK, a.k], { axis: 1 }); // [KV, P+T, D]
    const vAll = sb.node("Concat", [a.pastV, a.v], { axis: 1 }); // [KV, P+T, D]
    const valid = sb.node("Concat", [pastValidT(), ctx.causalKV], { axis: 2 }); // [KV, T, P+T]
    const mask = sb.node("Unsqueeze", [
      sb.node("Where", [valid, ctx.zero, ctx.negInf]),
      sb.ints([1]),
    ]); // [KV, 1, T, P+T]
    // llama.cpp adds the f16 products in one order for a single token and in another for a batch.
    // Head dims that are not a multiple of 64 are padded with zeros (exact order only for multiples).
    // The products run over head dims in llama.cpp's order, and the order of the additions decides
    // the rounding: for Llama its GGUF rows pair dims (2i, 2i+1) where ours hold (i, i + D/2)
    // (weights.ts undoes the converter's permutation); Qwen files keep the Hugging Face order.
    const headOrder = (x: string, axis: number) =>
      c.architecture === "llama"
        ? sb.node(
            "Gather",
            [x, sb.ints(Array.from({ length: D }, (_, j) => (j % 2) * (D / 2) + (j >> 1)))],
            { axis },
          )
        : x;
    const qI = headOrder(a.qg, 3); // [KV, G, T, D]
    const qPad = sb.node("Pad", [qI, padAxisTo(sb, sb.node("Shape", [qI]), 4, 3, 64)]); // [KV, G, T, D']
    const k4 = sb.node("Unsqueeze", [headOrder(kAll, 2), sb.ints([1])]); // [KV, 1, P+T, D]
    const kPad = sb.node("Pad", [k4, padAxisTo(sb, sb.node("Shape", [k4]), 4, 3, 64)]); // [KV, 1, P+T, D']
    const vPad = sb.node("Pad", [vAll, padAxisTo(sb, sb.node("Shape", [vAll]), 3, 1, 64)]); // [KV, S, D], S a multiple of 64
    const vT = sb.node("Unsqueeze", [
      sb.node("Transpose", [vPad], { perm: [0, 2, 1] }),
      sb.ints([1]),
    ]); // [KV, 1, D, S]
    const branch = (scheme: "tinyblas" | "vecdot") =>
      sb.subgraph((bb) => {
        const sops = new GgmlOps(bb);
        const scores = bb.node("Add", [
          bb.node("Mul", [laneDot(bb, qPad, kPad, [KV, G], [KV, 1], scheme), ctx.scale]),
          mask,
        ]); // [KV, G, T, P+T]
        const probs = sops.f16(sops.softmax(scores, 4));
        const pPad = bb.node("Pad", [probs, padAxisTo(bb, bb.node("Shape", [probs]), 4, 3, 64)]); // [KV, G, T, S]
        bb.output(
          laneDot(bb, pPad, vT, [KV, G], [KV, 1], scheme),
          `ctx_${scheme}_${a.l}`,
          DType.float,
          [KV, G, "T", D],
        );
      });
    const single = sb.node("Equal", [ctx.Tsc, sb.int(1)]);
    const att4 = sb.node("If", [single], {
      then_branch: { graph: branch("vecdot") },
      else_branch: { graph: branch("tinyblas") },
    }); // [KV, G, T, D]
    att = sb.node("Reshape", [att4, sb.ints([H, -1, D])]); // [H, T, D]
  }
  return att;
}

/**
 * The scores output of one layer when a span is scored. Reduced inside the graph: only [KV, P+T]
 * leaves it. Computed in f32 in every numerics (it ranks keys; it is not part of what llama.cpp
 * computes). The cache's keys and the new ones are joined only here.
 */
function spanScores(ctx: GraphContext, g: GraphBuilder, a: AttentionInputs): string {
  const keyValid = a.keyValid(); // [KV, P+T]
  const kAll = g.node("Concat", [a.pastK, a.k], { axis: 1 }); // [KV, P+T, D]
  const qs = g.node("Slice", [
    a.qg,
    g.node("Unsqueeze", [ctx.Tn, g.ints([0])]),
    ctx.T,
    g.ints([2]),
  ]); // [KV, G, S, D]
  const kT = g.node("Unsqueeze", [g.node("Transpose", [kAll], { perm: [0, 2, 1] }), g.ints([1])]); // [KV, 1, D, P+T]
  const bias = g.node("Unsqueeze", [
    g.node("Where", [keyValid, ctx.zero, ctx.negInf]),
    g.ints([1, 2]),
  ]); // [KV, 1, 1, P+T]
  const probs = g.node(
    "Softmax",
    [g.node("Add", [g.node("Mul", [g.node("MatMul", [qs, kT]), ctx.scale]), bias])],
    { axis: -1 },
  ); // [KV, G, S, P+T]
  const best = g.node("ReduceMax", [probs], { axes: [1, 2], keepdims: 0 }); // [KV, P+T]
  // With no valid key at all the softmax is NaN: no key received any attention.
  return g.node("Where", [keyValid, best, ctx.zero]);
}

/** The span's scores (spanScores) if the call marks a span, else zeros [KV, P+T] (ggml numerics). */
function spanScoresIfAny(ctx: GraphContext, g: GraphBuilder, a: AttentionInputs): string {
  const KV = ctx.c.numKvHeads;
  const then = g.subgraph((sb) =>
    sb.output(spanScores(ctx, sb, a), `span_scores_${a.l}`, DType.float, [KV, "PT"]),
  );
  const none = g.subgraph((sb) =>
    sb.output(
      sb.node("ConstantOfShape", [sb.node("Shape", [a.keyValid()])], {
        value: { tensor: new Float32Array([0]), dims: [1] },
      }),
      `no_scores_${a.l}`,
      DType.float,
      [KV, "PT"],
    ),
  );
  return g.node("If", [ctx.scoring], {
    then_branch: { graph: then },
    else_branch: { graph: none },
  });
}

/** Rows `ids` of a Q8_0 table [V, E] as f32: codes (stored + 128 as uint8) minus 128, times their block's scale.   → [T, E] */
function q8Rows(
  g: GraphBuilder,
  ids: string,
  V: number,
  E: number,
  read: () => QuantBlocks,
): string {
  const nb = E / 32;
  const codes = g.typedWeight("token_embd.q8", [V, nb, 32], DType.uint8, () =>
    Uint8Array.from(read().codes, (v) => v + 128),
  ); // [V, E/32, 32]
  const scales = g.weight("token_embd.q8_scales", [V, nb, 1], () => read().scales); // [V, E/32, 1]
  const q = g.node("Sub", [
    g.node("Cast", [g.node("Gather", [codes, ids], { axis: 0 })], { to: DType.float }),
    g.float(128),
  ]); // [T, E/32, 32]
  return g.node("Reshape", [
    g.node("Mul", [q, g.node("Gather", [scales, ids], { axis: 0 })]),
    g.ints([-1, E]),
  ]); // [T, E]
}

/**
 * x · Wᵀ for a Q4_1 or Q8_0 matrix kept quantised, through onnxruntime's MatMulNBits (com.microsoft)
 * with int8 activations (accuracy level 4): "fast" numerics. Q8_0 codes go in as uint8 with zero
 * point 128. Q4_1 blocks are d·q + m, which MatMulNBits cannot hold (its zero points are integers
 * or slow floats); they go in as (q − 8)·d, its default zero point, and the rest, (m + 8d) per block,
 * is added as a small product of x's block sums with those offsets.   x: [T, K] → [T, out]
 */
function matMulNBits(
  g: GraphBuilder,
  x: string,
  key: string,
  K: number,
  out: number,
  type: "Q4_1" | "Q8_0",
  read: () => QuantBlocks,
): string {
  const nb = K / 32;
  const bits = type === "Q4_1" ? 4 : 8;
  const codes = g.typedWeight(`${key}.nbits`, [out, nb, (32 * bits) / 8], DType.uint8, () => {
    const c = read().codes; // [out, K]
    if (bits === 8) return Uint8Array.from(c, (v) => v + 128);
    const packed = new Uint8Array(c.length / 2);
    for (let i = 0; i < packed.length; i++) packed[i] = c[2 * i] | (c[2 * i + 1] << 4);
    return packed;
  });
  const scales = g.weight(`${key}.nbits_scales`, [out * nb], () => read().scales);
  const inputs = [x, codes, scales];
  if (bits === 8)
    inputs.push(
      g.typedWeight(`${key}.nbits_zero`, [out * nb], DType.uint8, () =>
        new Uint8Array(out * nb).fill(128),
      ),
    );
  const y = g.node(
    "MatMulNBits",
    inputs,
    { K, N: out, bits, block_size: 32, accuracy_level: 4 },
    undefined,
    "com.microsoft",
  ); // [T, out]
  if (bits === 8) return y;
  const offsets = g.weight(`${key}.nbits_offsets`, [out, nb], () => {
    const b = read();
    return Float32Array.from(b.mins as Float32Array, (m, i) => m + 8 * b.scales[i]);
  }); // [out, nb]
  const sums = g.node("ReduceSum", [g.node("Reshape", [x, g.ints([-1, nb, 32])]), g.ints([-1])], {
    keepdims: 0,
  }); // [T, nb]
  return g.node("Gemm", [sums, offsets, y], { transB: 1 }); // sums · offsetsᵀ + y
}

/** Row-stacks the blocks of fused matrices (all of one type). */
function stackBlocks(parts: Array<QuantBlocks | null>): QuantBlocks {
  const all = parts.filter((p): p is QuantBlocks => p !== null);
  if (all.length !== parts.length) throw new Error("stackBlocks: a part has no blocks");
  const mins = all.map((p) => p.mins);
  return {
    type: all[0].type,
    codes: concat(all.map((p) => p.codes)),
    scales: concat(all.map((p) => p.scales)),
    mins: mins.every((m): m is Float32Array => m !== null) ? concat(mins) : null,
  };
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

/**
 * Graph pieces that compute bit for bit what llama.cpp's CPU kernels compute (ggml, x86 with
 * AVX-512; the reference for `ggml` numerics). Small models quantised to 4 bits are chaotic under
 * rounding: llama.cpp quantises the input of every matrix product, so a one-ULP difference upstream
 * flips some of those roundings and the flips compound over the layers. Matching llama.cpp token for
 * token therefore needs its arithmetic, not just its formulas:
 *
 * - fused multiply-add, fma(a, b, c) = round₃₂(a·b + c), computed in f64 (a·b is exact there) and
 *   rounded once to f32;
 * - `vexpf`: ggml's vectorised expf (`ggml_v_expf`, AVX-512), used by its SiLU and softmax;
 * - `quantizedMatmul`: activations quantised to Q8 per 32-value block (`quantize_row_q8_1`), integer
 *   block dot products (exact in f32: |Σ| < 2²⁴), accumulated block by block with fmas in the order of
 *   the AMX/VNNI kernel (`ggml/src/ggml-cpu/amx/mmq.cpp`): c ← fma(Σq·q', d·d', c), then for Q4_1
 *   c ← fma(m, s, c) with the Q8_1 block sum s = f16(d·Σq').
 */
import { DType, type GraphBuilder } from "../onnx/builder";
import type { QuantBlocks } from "./weights";

/** A hexadecimal float literal, e.g. hexFloat("1.715476", 0) for C's 0x1.715476p+0f. */
export function hexFloat(mantissa: string, exponent: number): number {
  const [int, frac = ""] = mantissa.split(".");
  return (parseInt(int + frac, 16) / 16 ** frac.length) * 2 ** exponent;
}

const EXP = {
  r: hexFloat("1.8", 23),
  log2e: hexFloat("1.715476", 0),
  ln2hi: hexFloat("1.62e4", -1),
  ln2lo: hexFloat("1.7f7d1c", -20),
  c5: hexFloat("1.0e4020", -7),
  c4: hexFloat("1.573e2e", -5),
  c3: hexFloat("1.555e66", -3),
  c2: hexFloat("1.fffdb6", -2),
  c1: hexFloat("1.ffffec", -1),
};

export class GgmlOps {
  constructor(private readonly g: GraphBuilder) {}

  private f64(x: string): string {
    return this.g.node("Cast", [x], { to: DType.double });
  }

  private f32(x: string): string {
    return this.g.node("Cast", [x], { to: DType.float });
  }

  /** round₃₂(x) through f16: ggml's f32 → f16 → f32. */
  f16(x: string): string {
    return this.f32(this.g.node("Cast", [x], { to: DType.float16 }));
  }

  /** fma(a, b, c) on f32 tensors (or f32 constants). */
  fma(a: string, b: string, c: string): string {
    const g = this.g;
    return this.f32(g.node("Add", [g.node("Mul", [this.f64(a), this.f64(b)]), this.f64(c)]));
  }

  /** fnmadd(a, b, c) = round₃₂(c − a·b). */
  fnmadd(a: string, b: string, c: string): string {
    const g = this.g;
    return this.f32(g.node("Sub", [this.f64(c), g.node("Mul", [this.f64(a), this.f64(b)])]));
  }

  /** ggml_v_expf (AVX-512), elementwise on an f32 tensor. */
  vexpf(x: string): string {
    const g = this.g;
    const k = (v: number) => g.float(v);
    const z = this.fma(x, k(EXP.log2e), k(EXP.r));
    const n = g.node("Sub", [z, k(EXP.r)]); // the integer nearest x·log2(e)
    const b = this.fnmadd(n, k(EXP.ln2lo), this.fnmadd(n, k(EXP.ln2hi), x)); // x − n·ln2
    const u = g.node("Mul", [b, b]);
    const j = this.fma(
      this.fma(this.fma(k(EXP.c5), b, k(EXP.c4)), u, this.fma(k(EXP.c3), b, k(EXP.c2))),
      u,
      this.fma(k(EXP.c1), b, k(1)),
    );
    // scalef: j·2ⁿ, rounded once (through f64, where 2ⁿ is exact for |n| ≤ 192).
    const res = this.f32(g.node("Mul", [this.f64(j), g.node("Pow", [g.double(2), this.f64(n)])]));
    // |n| > 192: ±overflow, +∞ for positive n, 0 for negative.
    const big = g.node("Greater", [g.node("Abs", [n]), k(192)]);
    const alt = g.node("Where", [g.node("LessOrEqual", [n, k(0)]), k(0), k(Infinity)]);
    return g.node("Where", [big, alt, res]);
  }

  /** ggml_vec_swiglu_f32: silu(gate)·up with silu(x) = x / (1 + vexpf(−x)). */
  swiglu(gate: string, up: string): string {
    const g = this.g;
    const e = this.vexpf(g.node("Neg", [gate]));
    return g.node("Mul", [g.node("Div", [gate, g.node("Add", [g.float(1), e])]), up]);
  }

  /**
   * ggml's soft_max over the last axis of already scaled and masked scores: e = vexpf(x − max),
   * sum in f64, then e · f32(1/sum).
   */
  softmax(x: string, rank: number): string {
    const g = this.g;
    const max = g.node("ReduceMax", [x], { axes: [-1], keepdims: 1 });
    const e = this.vexpf(g.node("Sub", [x, max]));
    // ggml adds the exponentials 16 at a time in f32 (`_mm512_reduce_add_ps`: halving tree), then
    // those partial sums in f64. Zeros pad the row to a multiple of 16, as masked cells do in ggml.
    const padded = g.node("Pad", [e, padAxisTo(g, g.node("Shape", [e]), rank, rank - 1, 16)]);
    const chunks = g.node("Reshape", [padded, g.ints([...Array(rank - 1).fill(0), -1, 16])]); // [..., S/16, 16]
    let t = chunks;
    for (const half of [8, 4, 2, 1]) {
      const lo = g.node("Slice", [t, g.ints([0]), g.ints([half]), g.ints([-1])]);
      const hi = g.node("Slice", [t, g.ints([half]), g.ints([2 * half]), g.ints([-1])]);
      t = g.node("Add", [lo, hi]);
    }
    const sum = g.node("ReduceSum", [this.f64(t), g.ints([-2, -1])], { keepdims: 0 }); // [...]
    const inv = this.f32(g.node("Div", [g.double(1), g.node("Unsqueeze", [sum, g.ints([-1])])]));
    return g.node("Mul", [e, inv]);
  }

  /**
   * ggml's quantize_row_q8_0/q8_1 of x [T, K] in blocks of 32 (AVX path: id = 127/max|x|, round half
   * to even): codes [T, K/32, 32], scale d = f16(max|x|/127) and, for Q8_1, s = f16(d·Σcodes),
   * both [T, K/32, 1].
   */
  quantizeQ8(x: string, K: number): { codes: string; d: string; s: string } {
    const g = this.g;
    const blocks = g.node("Reshape", [x, g.ints([-1, K / 32, 32])]); // [T, nb, 32]
    const amax = g.node("ReduceMax", [g.node("Abs", [blocks])], { axes: [2], keepdims: 1 }); // [T, nb, 1]
    const id = g.node("Div", [g.float(127), g.node("Max", [amax, g.float(1e-30)])]); // all-zero blocks stay 0
    const codes = g.node("Round", [g.node("Mul", [blocks, id])]); // [T, nb, 32]
    const d32 = g.node("Div", [amax, g.float(127)]);
    const sum = g.node("ReduceSum", [codes, g.ints([2])], { keepdims: 1 }); // [T, nb, 1]
    return { codes, d: this.f16(d32), s: this.f16(g.node("Mul", [d32, sum])) };
  }

  /**
   * x [T, K] · Wᵀ for a Q4_1 or Q8_0 matrix W [out, K] given by its blocks, as the AMX/VNNI kernel
   * computes it. Returns [T, out].
   */
  quantizedMatmul(
    x: string,
    name: string,
    K: number,
    out: number,
    type: QuantBlocks["type"],
    blocks: () => QuantBlocks,
  ): string {
    const g = this.g;
    const nb = K / 32;
    // Weights as [nb, 32, out] codes and [nb, 1, out] scales (and mins): one batched product per block.
    // Each initializer reads the blocks when the weights file is written, so only one matrix is held at a time.
    const codesW = g.weight(`${name}.codes`, [nb, 32, out], () =>
      transposeBlocks(blocks().codes, out, K),
    );
    const scalesW = g.weight(`${name}.scales`, [nb, 1, out], () =>
      transposeRows(blocks().scales, out, nb),
    );
    const hasMins = type === "Q4_1";
    const minsW = hasMins
      ? g.weight(`${name}.mins`, [nb, 1, out], () =>
          transposeRows(blocks().mins ?? new Float32Array(out * nb), out, nb),
        )
      : "";

    const a = this.quantizeQ8(x, K);
    const perm = { perm: [1, 0, 2] };
    const sums = g.node("MatMul", [g.node("Transpose", [a.codes], perm), codesW]); // [nb, T, out], exact integers
    const dd = g.node("Mul", [g.node("Transpose", [a.d], perm), scalesW]); // [nb, T, out]: d_w·d_x in f32
    const terms = g.node("Mul", [this.f64(sums), this.f64(dd)]); // [nb, T, out] f64, exact
    const scanned = [terms];
    if (hasMins)
      scanned.push(g.node("Mul", [this.f64(minsW), this.f64(g.node("Transpose", [a.s], perm))])); // [nb, T, out]
    // The sequential fma chain over blocks as a Scan (one node instead of 2·nb): acc starts at 0.
    const body = g.subgraph((sb) => {
      const acc = sb.input("acc", DType.float, ["T", out]);
      const round = (v: string, term: string) =>
        sb.node("Cast", [sb.node("Add", [sb.node("Cast", [v], { to: DType.double }), term])], {
          to: DType.float,
        });
      let next = round(acc, sb.input("term", DType.double, ["T", out]));
      if (hasMins) next = round(next, sb.input("min_term", DType.double, ["T", out]));
      sb.output(next, "acc_out", DType.float, ["T", out]);
    });
    const zeros = g.node(
      "ConstantOfShape",
      [g.node("Slice", [g.node("Shape", [terms]), g.ints([1]), g.ints([3])])],
      {
        value: { tensor: new Float32Array([0]), dims: [1] },
      },
    ); // [T, out]
    return g.node("Scan", [zeros, ...scanned], {
      body: { graph: body },
      num_scan_inputs: scanned.length,
    }); // [T, out]
  }

  /**
   * x [T, K] · Wᵀ for a Q8_0 matrix as ggml_vec_dot_q8_0_q8_0 computes it on AVX2 (the CPU path
   * for weights outside the AMX buffer, such as the tied output head): per block, eight lanes of four
   * integer products, each lane accumulating fma(d_w·d_x, lane sum, acc) block after block; then
   * the lanes summed as hsum_float_8 (l + l+4, then + l+2, then + l+1). Returns [T, out].
   */
  q8VecDot(x: string, name: string, K: number, out: number, blocks: () => QuantBlocks): string {
    const g = this.g;
    const nb = K / 32;
    const codesW = g.weight(`${name}.codes8`, [nb, 8, 4, out], () =>
      transposeBlocks(blocks().codes, out, K),
    ); // k = 32b + 4·lane + j
    const scalesW = g.weight(`${name}.scales8`, [nb, 1, 1, out], () =>
      transposeRows(blocks().scales, out, nb),
    );
    const a = this.quantizeQ8(x, K);
    const lanesA = g.node("Transpose", [g.node("Reshape", [a.codes, g.ints([0, nb, 8, 4])])], {
      perm: [1, 2, 0, 3],
    }); // [nb, 8, T, 4]
    const sums = g.node("MatMul", [lanesA, codesW]); // [nb, 8, T, out], exact integers
    const dx = g.node("Unsqueeze", [g.node("Transpose", [a.d], { perm: [1, 0, 2] }), g.ints([1])]); // [nb, 1, T, 1]
    const dd = g.node("Mul", [scalesW, dx]); // [nb, 1, T, out]
    const terms = g.node("Mul", [this.f64(sums), this.f64(dd)]); // [nb, 8, T, out]
    const body = g.subgraph((sb) => {
      const acc = sb.input("acc", DType.float, [8, "T", out]);
      const term = sb.input("term", DType.double, [8, "T", out]);
      sb.output(
        sb.node("Cast", [sb.node("Add", [sb.node("Cast", [acc], { to: DType.double }), term])], {
          to: DType.float,
        }),
        "acc_out",
        DType.float,
        [8, "T", out],
      );
    });
    const zeros = g.node(
      "ConstantOfShape",
      [g.node("Slice", [g.node("Shape", [terms]), g.ints([1]), g.ints([4])])],
      {
        value: { tensor: new Float32Array([0]), dims: [1] },
      },
    ); // [8, T, out]
    const lanes = g.node("Scan", [zeros, terms], { body: { graph: body }, num_scan_inputs: 1 }); // [8, T, out]
    const half = (v: string, n: number) =>
      g.node("Add", [
        g.node("Slice", [v, g.ints([0]), g.ints([n]), g.ints([0])]),
        g.node("Slice", [v, g.ints([n]), g.ints([2 * n]), g.ints([0])]),
      ]);
    return g.node("Squeeze", [half(half(half(lanes, 4), 2), 1), g.ints([0])]); // [T, out]
  }
}

/** [out, K] → [K/32, 32, out] (equally [K/32, 8, 4, out]). */
function transposeBlocks(codes: Float32Array, out: number, K: number): Float32Array {
  const t = new Float32Array(codes.length);
  for (let o = 0; o < out; o++) for (let k = 0; k < K; k++) t[k * out + o] = codes[o * K + k];
  return t;
}

/** [out, nb] → [nb, 1, out]. */
function transposeRows(v: Float32Array, out: number, nb: number): Float32Array {
  const t = new Float32Array(v.length);
  for (let o = 0; o < out; o++) for (let b = 0; b < nb; b++) t[b * out + o] = v[o * nb + b];
  return t;
}

/**
 * Dot products over K as ggml's f16 kernels add them (products of f16 values are exact in f32, so
 * only the order of the f32 additions matters). a: [...batchA, M, K], bT: [...batchB, N, K] →
 * [..., M, N] (batch dims broadcast as in MatMul).
 *
 * - "tinyblas" (llamafile's sgemm, used for batches of two or more tokens): 16 lanes, lane l adds
 *   the products at l, l+16, l+32, … in order; then the lanes are summed pairwise (l and l+8, then
 *   +4, +2, +1: `_mm512_reduce_add_ps`).
 * - "vecdot" (`ggml_vec_dot_f16`, one token): four 16-lane accumulators j, lane l of j adding the
 *   products at 64i + 16j + l in order of i; then (j0 + j2) + (j1 + j3), then the same lane tree.
 *
 * K must be a multiple of 16 ("tinyblas") or 64 ("vecdot"); pad with zeros. The in-lane sums are
 * batched MatMuls, whose kernel accumulates along K in order.
 */
export function laneDot(
  g: GraphBuilder,
  a: string,
  bT: string,
  batchA: number[],
  batchB: number[],
  scheme: "tinyblas" | "vecdot",
): string {
  const r = batchA.length;
  let sums: string; // [..., 16, M, N]
  if (scheme === "tinyblas") {
    const a5 = g.node("Reshape", [a, g.ints([...batchA, 0, -1, 16])]); // [..., M, C, 16]
    const b5 = g.node("Reshape", [bT, g.ints([...batchB, 0, -1, 16])]); // [..., N, C, 16]
    sums = g.node("MatMul", [
      g.node("Transpose", [a5], { perm: [...range(r), r + 2, r, r + 1] }), // [..., 16, M, C]
      g.node("Transpose", [b5], { perm: [...range(r), r + 2, r + 1, r] }), // [..., 16, C, N]
    ]);
  } else {
    const a6 = g.node("Reshape", [a, g.ints([...batchA, 0, -1, 4, 16])]); // [..., M, I, 4, 16]
    const b6 = g.node("Reshape", [bT, g.ints([...batchB, 0, -1, 4, 16])]); // [..., N, I, 4, 16]
    const acc = g.node("MatMul", [
      g.node("Transpose", [a6], { perm: [...range(r), r + 2, r + 3, r, r + 1] }), // [..., 4, 16, M, I]
      g.node("Transpose", [b6], { perm: [...range(r), r + 2, r + 3, r + 1, r] }), // [..., 4, 16, I, N]
    ]); // [..., 4, 16, M, N]
    const j = (k: number) =>
      g.node("Squeeze", [
        g.node("Slice", [acc, g.ints([k]), g.ints([k + 1]), g.ints([r])]),
        g.ints([r]),
      ]);
    sums = g.node("Add", [g.node("Add", [j(0), j(2)]), g.node("Add", [j(1), j(3)])]); // [..., 16, M, N]
  }
  // Lane tree: 16 → 8 → 4 → 2 → 1 along the lane axis.
  let x = sums;
  for (const half of [8, 4, 2, 1]) {
    const lo = g.node("Slice", [x, g.ints([0]), g.ints([half]), g.ints([r])]);
    const hi = g.node("Slice", [x, g.ints([half]), g.ints([2 * half]), g.ints([r])]);
    x = g.node("Add", [lo, hi]);
  }
  return g.node("Squeeze", [x, g.ints([r])]); // [..., M, N]
}

/**
 * ONNX Pad pads that extend axis `axis` of a rank-`rank` tensor (whose Shape is `shape`) with zeros
 * at its end, up to a multiple of `m`.
 */
export function padAxisTo(
  g: GraphBuilder,
  shape: string,
  rank: number,
  axis: number,
  m: number,
): string {
  const n = g.node("Slice", [shape, g.ints([axis]), g.ints([axis + 1])]); // [1]
  const extra = g.node("Mod", [
    g.node("Sub", [g.ints([m]), g.node("Mod", [n, g.ints([m])])]),
    g.ints([m]),
  ]); // [1]
  const zeros = (k: number) => g.ints(Array(k).fill(0));
  return g.node("Concat", [zeros(rank + axis), extra, zeros(rank - axis - 1)], { axis: 0 });
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

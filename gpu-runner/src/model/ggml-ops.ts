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
  softmax(x: string): string {
    const g = this.g;
    const max = g.node("ReduceMax", [x], { axes: [-1], keepdims: 1 });
    const e = this.vexpf(g.node("Sub", [x, max]));
    const sum = g.node("ReduceSum", [this.f64(e), g.ints([-1])], { keepdims: 1 });
    return g.node("Mul", [e, this.f32(g.node("Div", [g.double(1), sum]))]);
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
  quantizedMatmul(x: string, name: string, K: number, out: number, blocks: () => QuantBlocks): string {
    const g = this.g;
    const nb = K / 32;
    // Weights as [nb, 32, out] codes and [nb, 1, out] scales (and mins): one batched product per block.
    let cache: QuantBlocks | undefined;
    const get = () => (cache ??= blocks());
    const codesW = g.weight(`${name}.codes`, [nb, 32, out], () => transposeBlocks(get().codes, out, K));
    const scalesW = g.weight(`${name}.scales`, [nb, 1, out], () => transposeRows(get().scales, out, nb));
    const hasMins = get().mins !== null;
    const minsW = hasMins ? g.weight(`${name}.mins`, [nb, 1, out], () => transposeRows(get().mins as Float32Array, out, nb)) : "";
    if (!hasMins) cache = undefined; // re-read at write time; keeps memory flat while building

    const a = this.quantizeQ8(x, K);
    const perm = { perm: [1, 0, 2] };
    const sums = g.node("MatMul", [g.node("Transpose", [a.codes], perm), codesW]); // [nb, T, out], exact integers
    const dd = g.node("Mul", [g.node("Transpose", [a.d], perm), scalesW]); // [nb, T, out]: d_w·d_x in f32
    const terms = g.node("Mul", [this.f64(sums), this.f64(dd)]); // [nb, T, out] f64, exact
    const scanned = [terms];
    if (hasMins) scanned.push(g.node("Mul", [this.f64(minsW), this.f64(g.node("Transpose", [a.s], perm))])); // [nb, T, out]
    // The sequential fma chain over blocks as a Scan (one node instead of 2·nb): acc starts at 0.
    const body = g.subgraph((sb) => {
      const acc = sb.input("acc", DType.float, ["T", out]);
      const round = (v: string, term: string) =>
        sb.node("Cast", [sb.node("Add", [sb.node("Cast", [v], { to: DType.double }), term])], { to: DType.float });
      let next = round(acc, sb.input("term", DType.double, ["T", out]));
      if (hasMins) next = round(next, sb.input("min_term", DType.double, ["T", out]));
      sb.output(next, "acc_out", DType.float, ["T", out]);
    });
    const zeros = g.node("ConstantOfShape", [g.node("Slice", [g.node("Shape", [terms]), g.ints([1]), g.ints([3])])], {
      value: { tensor: new Float32Array([0]), dims: [1] },
    }); // [T, out]
    cache = undefined;
    return g.node("Scan", [zeros, ...scanned], { body: { graph: body }, num_scan_inputs: scanned.length }); // [T, out]
  }
}

/** [out, K] → [K/32, 32, out]. */
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

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import { DType, GraphBuilder } from "../onnx/builder";
import { f16Value, f32ToF16 } from "../testing";
import { seededRandom } from "./sampling";
import { GgmlOps, laneDot } from "./ggml-ops";
import type { QuantBlocks } from "./weights";

// Scalar models of the ggml kernels the graph pieces reproduce, written from their definitions.
const f = Math.fround;
const f16 = (v: number) => f16Value(f32ToF16(v));
const fma = (a: number, b: number, c: number) => f(a * b + c); // exact in f64 for these operands
const tree16 = (lanes: number[]) => {
  let v = lanes;
  for (const half of [8, 4, 2, 1]) v = v.slice(0, half).map((x, i) => f(x + v[i + half]));
  return v[0];
};

async function run(
  build: (g: GraphBuilder) => void,
  feeds: Record<string, [Float32Array, number[]]>,
): Promise<Float32Array> {
  const g = new GraphBuilder("unused.bin");
  build(g);
  const session = await ort.InferenceSession.create(g.build({ opset: 17, producer: "test" }).model);
  const input = Object.fromEntries(
    Object.entries(feeds).map(([k, [data, dims]]) => [k, new ort.Tensor("float32", data, dims)]),
  );
  const out = await session.run(input);
  return out.y.data as Float32Array;
}

describe("ggml kernel pieces", () => {
  const rand = seededRandom(3);

  it("laneDot adds f16 products in the order of llamafile's sgemm and of ggml_vec_dot_f16", async () => {
    const M = 3,
      N = 5,
      K = 128;
    const a = Float32Array.from({ length: M * K }, () => f16((rand() * 2 - 1) * 8));
    const b = Float32Array.from({ length: N * K }, () => f16((rand() * 2 - 1) * 8));
    const tinyblas = (i: number, j: number) => {
      const lanes = Array<number>(16).fill(0);
      for (let c = 0; c < K / 16; c++)
        for (let l = 0; l < 16; l++)
          lanes[l] = f(lanes[l] + a[i * K + 16 * c + l] * b[j * K + 16 * c + l]);
      return tree16(lanes);
    };
    const vecdot = (i: number, j: number) => {
      const acc = [0, 1, 2, 3].map(() => Array<number>(16).fill(0));
      for (let s = 0; s < K; s += 64)
        for (let q = 0; q < 4; q++)
          for (let l = 0; l < 16; l++)
            acc[q][l] = f(acc[q][l] + a[i * K + s + 16 * q + l] * b[j * K + s + 16 * q + l]);
      return tree16(acc[0].map((v, l) => f(f(v + acc[2][l]) + f(acc[1][l] + acc[3][l]))));
    };
    for (const [scheme, model] of [
      ["tinyblas", tinyblas],
      ["vecdot", vecdot],
    ] as const) {
      const y = await run(
        (g) =>
          g.output(
            laneDot(
              g,
              g.input("a", DType.float, [1, M, K]),
              g.input("b", DType.float, [1, N, K]),
              [1],
              [1],
              scheme,
            ),
            "y",
            DType.float,
            [1, M, N],
          ),
        { a: [a, [1, M, K]], b: [b, [1, N, K]] },
      );
      for (let i = 0; i < M; i++)
        for (let j = 0; j < N; j++) expect(y[i * N + j], `${scheme} ${i},${j}`).toBe(model(i, j));
    }
  });

  it("quantizedMatmul is quantize_row_q8_1 then the AMX Q4_1 block chain", async () => {
    const T = 2,
      K = 96,
      out = 4,
      nb = K / 32;
    const x = Float32Array.from({ length: T * K }, () => f((rand() * 2 - 1) * 3));
    const blocks: QuantBlocks = {
      type: "Q4_1",
      codes: Float32Array.from({ length: out * K }, () => Math.floor(rand() * 16)),
      scales: Float32Array.from({ length: out * nb }, () => f16(rand() * 0.1)),
      mins: Float32Array.from({ length: out * nb }, () => f16(-rand() * 0.5)),
    };
    const want = new Float32Array(T * out);
    for (let t = 0; t < T; t++) {
      for (let o = 0; o < out; o++) {
        let acc = 0;
        for (let b = 0; b < nb; b++) {
          const xs = x.subarray(t * K + 32 * b, t * K + 32 * b + 32);
          const amax = Math.max(...Array.from(xs, Math.abs));
          const id = amax ? f(127 / amax) : 0;
          const q = Array.from(xs, (v) => {
            const r = f(v * id);
            const n = Math.round(r);
            return Math.abs(r % 1) === 0.5 && n % 2 !== 0 ? n - 1 : n; // round half to even
          });
          const d32 = f(amax / 127);
          const s = f16(f(d32 * q.reduce((p, v) => p + v, 0)));
          let sumi = 0;
          for (let j = 0; j < 32; j++) sumi += q[j] * blocks.codes[o * K + 32 * b + j];
          acc = fma(sumi, f(blocks.scales[o * nb + b] * f16(d32)), acc);
          acc = fma(blocks.mins?.[o * nb + b] ?? 0, s, acc);
        }
        want[t * out + o] = acc;
      }
    }
    const g = new GraphBuilder("w.bin");
    const y = new GgmlOps(g).quantizedMatmul(
      g.input("x", DType.float, ["T", K]),
      "w",
      K,
      out,
      "Q4_1",
      () => blocks,
    );
    g.output(y, "y", DType.float, ["T", out]);
    const built = g.build({ opset: 17, producer: "test" });
    // Weights are external data: write them beside the model in a temporary folder.
    const dir = mkdtempSync(join(tmpdir(), "ggml-ops-"));
    try {
      const bin = Buffer.concat(built.external.map((c) => Buffer.from(c.bytes())));
      writeFileSync(join(dir, "w.bin"), bin);
      writeFileSync(join(dir, "m.onnx"), built.model);
      const session = await ort.InferenceSession.create(join(dir, "m.onnx"));
      const got = (await session.run({ x: new ort.Tensor("float32", x, [T, K]) })).y
        .data as Float32Array;
      expect(Array.from(got)).toEqual(Array.from(want));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

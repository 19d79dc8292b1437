import { describe, expect, it } from "vitest";
import { bufferSource, parseGguf } from "../gguf";
import { tinyGguf } from "../testing";
import { configFromGguf } from "./config";
import { ggufWeights, unpermuteRows } from "./weights";

describe("GGUF weights", () => {
  it("undo llama.cpp's q/k row permutation, giving back the checkpoint's layout", () => {
    // numKvHeads differs from numHeads so that q and k use different head counts.
    const { bytes, original } = tinyGguf({
      architecture: "llama",
      numHeads: 4,
      numKvHeads: 2,
      numLayers: 1,
    });
    const file = parseGguf(bufferSource(bytes));
    const w = ggufWeights(file, configFromGguf(file), "x");
    expect(Array.from(w.layer(0, "wq"))).toEqual(Array.from(original.get("wq") ?? []));
    expect(Array.from(w.layer(0, "wk"))).toEqual(Array.from(original.get("wk") ?? []));
  });

  it("leave qwen2 projections as stored (its GGUF is not permuted)", () => {
    const { bytes, original } = tinyGguf({ architecture: "qwen2", numLayers: 1 });
    const file = parseGguf(bufferSource(bytes));
    const w = ggufWeights(file, configFromGguf(file), "x");
    expect(Array.from(w.layer(0, "wq"))).toEqual(Array.from(original.get("wq") ?? []));
  });

  it("unpermuteRows maps row h·D+2i+j to h·D+j·D/2+i", () => {
    // One head of dim 4, one column: stored rows [a0, b0, a1, b1] are original [a0, a1, b0, b1].
    expect(Array.from(unpermuteRows(Float32Array.from([10, 20, 11, 21]), 1, 4, 1))).toEqual([
      10, 11, 20, 21,
    ]);
  });

  it("reject a tensor of the wrong size with the tensor's name", () => {
    const { bytes } = tinyGguf({ numLayers: 1 });
    const file = parseGguf(bufferSource(bytes));
    const config = { ...configFromGguf(file), hiddenSize: 32 };
    expect(() => ggufWeights(file, config, "x").layer(0, "wq")).toThrow(/attn_q\.weight/);
  });
});

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { isEpicacheError } from "@epicache/shared";
import { NEEDS_PULL, pulledModel, tinyGguf, writeGguf } from "../testing";
import { bufferSource, dequantize, meta, openGguf, parseGguf } from ".";

const small = () =>
  writeGguf(
    [
      ["general.architecture", "string", "llama"],
      ["answer", "u32", 42],
      ["ratio", "f32", 0.5],
      ["flag", "bool", true],
      ["names", "strings", ["a", "βeta", "🎉"]],
      ["ids", "i32s", [-1, 0, 7]],
    ],
    [
      {
        name: "w",
        dims: [32, 2],
        type: "F32",
        data: Float32Array.from({ length: 64 }, (_, i) => i / 8),
      },
      { name: "b", dims: [4], type: "F16", data: Float32Array.from([1, -2, 0.5, 65504]) },
    ],
    64,
  );

function expectCodedError(f: () => unknown): void {
  try {
    f();
  } catch (e) {
    expect(isEpicacheError(e), `not a coded error: ${String(e)}`).toBe(true);
    return;
  }
}

describe("GGUF reader", () => {
  it("reads typed metadata, tensor infos and aligned data", () => {
    const file = parseGguf(bufferSource(small()));
    expect(file.version).toBe(3);
    expect(file.alignment).toBe(64);
    expect(file.dataOffset % 64).toBe(0);
    expect(meta(file, "answer", "number")).toBe(42);
    expect(meta(file, "ratio", "number")).toBe(0.5);
    expect(meta(file, "flag", "boolean")).toBe(true);
    expect(meta(file, "names", "array")).toEqual(["a", "βeta", "🎉"]);
    expect(meta(file, "ids", "array")).toEqual([-1, 0, 7]);
    const w = file.tensors.get("w");
    expect(w).toMatchObject({ dims: [32, 2], type: "F32", elementCount: 64, byteLength: 256 });
    const values = dequantize("F32", file.readTensorBytes(w as NonNullable<typeof w>), 64);
    expect(values[9]).toBe(9 / 8);
    const b = file.tensors.get("b");
    expect(
      Array.from(dequantize("F16", file.readTensorBytes(b as NonNullable<typeof b>), 4)),
    ).toEqual([1, -2, 0.5, 65504]);
  });

  it("names a missing or mistyped key", () => {
    const file = parseGguf(bufferSource(small()));
    expect(() => meta(file, "nope", "string")).toThrow(/lacks nope/);
    expect(() => meta(file, "answer", "string")).toThrow(/answer is not a string/);
  });

  it("rejects bad magic and unknown versions with codes", () => {
    const bytes = small();
    const bad = bytes.slice();
    bad[0] = 0x47 ^ 1;
    expect(() => parseGguf(bufferSource(bad))).toThrow(
      expect.objectContaining({ code: "gguf_invalid" }),
    );
    const v9 = bytes.slice();
    new DataView(v9.buffer).setUint32(4, 9, true);
    expect(() => parseGguf(bufferSource(v9))).toThrow(
      expect.objectContaining({ code: "gguf_unsupported" }),
    );
  });

  it("gives gguf_truncated for every truncation point", () => {
    const bytes = small();
    const full = parseGguf(bufferSource(bytes));
    // Past the end of the last tensor there is only padding, which a file may lack.
    const end = Math.max(...[...full.tensors.values()].map((t) => t.offset + t.byteLength));
    for (let n = 0; n < end; n++) {
      let err: unknown;
      try {
        parseGguf(bufferSource(bytes.subarray(0, n)));
      } catch (e) {
        err = e;
      }
      expect(err, `truncated at ${n}`).toMatchObject({
        code: expect.stringMatching(/^gguf_(truncated|invalid)$/),
      });
    }
  });

  it("flags a huge declared count without allocating it", () => {
    const bytes = small();
    new DataView(bytes.buffer).setBigUint64(16, 1n << 60n, true); // metadata count
    expect(() => parseGguf(bufferSource(bytes))).toThrow(
      expect.objectContaining({ code: "gguf_invalid" }),
    );
  });

  it("never throws anything but coded errors on corrupted bytes (fuzzed)", () => {
    const base = tinyGguf({ numLayers: 1, hiddenSize: 32, intermediateSize: 32 }).bytes.subarray(
      0,
      4096,
    );
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(base.length - 1), fc.integer({ min: 0, max: 255 })), {
          minLength: 1,
          maxLength: 8,
        }),
        fc.nat(base.length),
        (flips, cut) => {
          const bytes = base.slice(0, Math.max(cut, 8));
          for (const [i, v] of flips) if (i < bytes.length) bytes[i] = v;
          expectCodedError(() => parseGguf(bufferSource(bytes)));
        },
      ),
      { numRuns: 300, seed: 42 },
    );
  });

  const path = pulledModel("chat");
  it.skipIf(!path)(`reads SmolLM2-135M-Instruct Q4_1 ${NEEDS_PULL}`, () => {
    const file = openGguf(path as string);
    try {
      expect(meta(file, "general.architecture", "string")).toBe("llama");
      expect(meta(file, "llama.block_count", "number")).toBe(30);
      expect(file.tensors.size).toBe(272);
      const types = new Set([...file.tensors.values()].map((t) => t.type));
      expect(types).toEqual(new Set(["F32", "Q4_1", "Q8_0"]));
      const q = file.tensors.get("blk.0.attn_q.weight");
      expect(q?.dims).toEqual([576, 576]);
    } finally {
      file.close();
    }
  });
});

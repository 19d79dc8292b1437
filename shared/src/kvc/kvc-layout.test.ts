import { describe, expect, it } from "vitest";
import { thrown } from "../testing";
import { decodeKvcBytes } from "./decode-kvc";
import { encodeKvcBytes } from "./encode-kvc";
import { f16BitsToF32 } from "./f16";
import { KVC_HEADER_BYTES, type KvcDtype, type KvcHeader, readKvcHeader } from "./kvc-format";
import {
  type KvcByteRange,
  kvcLayerRange,
  kvcLayout,
  kvcLengthsRange,
  readKvcLayout,
} from "./kvc-layout";
import { randomCache } from "./test-caches";

const DTYPES: KvcDtype[] = ["f32", "f16", "int8"];
const header = (dtype: KvcDtype, layers: number, kvHeads: number, headDim: number): KvcHeader => ({
  version: 1,
  dtype,
  fingerprint: "0123456789abcdef",
  layers,
  kvHeads,
  headDim,
  budget: null,
  nextPosition: 0,
});

/** A copy of the bytes in `r` (aligned, so typed arrays can view it). */
const slice = (bytes: Uint8Array, r: KvcByteRange): ArrayBuffer =>
  bytes.slice(r.offset, r.offset + r.byteLength).buffer;

describe("kvcLayout", () => {
  it("places the sections of the golden 1 × 2 × 2 cache (lengths 2, 1) at hand-computed offsets", () => {
    const spans = (dtype: KvcDtype) =>
      kvcLayout(header(dtype, 1, 2, 2), new Uint32Array([2, 1])).sections.map((s) => [
        s.tag,
        s.offset,
        s.bodyOffset,
        s.bodyBytes,
        s.end,
      ]);
    // LPOS body: 2 lengths + 3 positions = 20 bytes; KEYS/VALS: 3 entries × 2 channels × e.
    expect(spans("f16")).toEqual([
      ["LPOS", 44, 56, 20, 80],
      ["KEYS", 80, 92, 12, 108],
      ["VALS", 108, 120, 12, 136],
    ]);
    expect(spans("int8")).toEqual([
      ["LPOS", 44, 56, 20, 80],
      ["KSCL", 80, 92, 16, 112],
      ["KEYS", 112, 124, 6, 134],
      ["VSCL", 134, 146, 16, 166],
      ["VALS", 166, 178, 6, 188],
    ]);
    expect(kvcLayout(header("f32", 1, 2, 2), new Uint32Array([2, 1])).byteLength).toBe(
      44 + 36 + 2 * (16 + 24),
    );
  });

  it("gives the size the format's doc quotes for a SmolLM2 cache of 1024 entries per head", () => {
    const layout = kvcLayout(header("f16", 30, 3, 64), new Uint32Array(90).fill(1024));
    expect(layout.byteLength).toBe(23_962_052);
  });

  it("matches the encoded files: size, and each section's tag at its offset", () => {
    const cache = randomCache({ layers: 3, kvHeads: 2, headDim: 5, lengths: { max: 9 }, seed: 21 });
    for (const dtype of DTYPES) {
      const bytes = encodeKvcBytes(cache, dtype);
      const layout = kvcLayout(readKvcHeader(bytes), cache.lengths);
      expect(layout.byteLength).toBe(bytes.length);
      for (const s of layout.sections) {
        expect(new TextDecoder().decode(bytes.subarray(s.offset, s.offset + 4))).toBe(s.tag);
        const dv = new DataView(bytes.buffer, bytes.byteOffset);
        expect(dv.getUint32(s.offset + 4, true)).toBe(s.bodyBytes);
      }
      expect(layout.sections.at(-1)?.end).toBe(bytes.length);
    }
  });
});

describe("ranged reads of one layer", () => {
  const cache = randomCache({ layers: 4, kvHeads: 3, headDim: 6, lengths: { max: 11 }, seed: 9 });

  it.each(DTYPES)(
    "%s: the header, then the lengths range, then each layer's ranges give that layer's data",
    (dtype) => {
      const bytes = encodeKvcBytes(cache, dtype);
      const decoded = decodeKvcBytes(bytes).cache;
      const H = cache.kvHeads;
      const D = cache.headDim;

      // What a ranged reader fetches: 44 bytes, then kvcLengthsRange, then per layer.
      const head = readKvcHeader(bytes.subarray(0, KVC_HEADER_BYTES));
      const lr = kvcLengthsRange(head);
      expect(lr).toEqual({ offset: 44, byteLength: 12 + 4 * 4 * 3 });
      const layout = readKvcLayout(head, bytes.slice(lr.offset, lr.offset + lr.byteLength));
      expect(layout).toEqual(kvcLayout(readKvcHeader(bytes), cache.lengths));

      for (let l = 0; l < cache.layers; l++) {
        const r = kvcLayerRange(layout, l);
        const heads = Array.from({ length: H }, (_, h) => l * H + h);
        expect(Array.from(r.lengths)).toEqual(heads.map((i) => cache.lengths[i]));
        const concat = (arrays: ArrayLike<number>[]) => arrays.flatMap((a) => Array.from(a));

        expect(Array.from(new Int32Array(slice(bytes, r.positions)))).toEqual(
          concat(heads.map((i) => cache.positions[i])),
        );
        for (const [range, scalesRange, tensor] of [
          [r.keys, r.keyScales, "keys"],
          [r.values, r.valueScales, "values"],
        ] as const) {
          const expected = concat(heads.map((i) => decoded[tensor][i]));
          let got: number[];
          if (dtype === "f32") got = Array.from(new Float32Array(slice(bytes, range)));
          else if (dtype === "f16")
            got = Array.from(new Uint16Array(slice(bytes, range)), f16BitsToF32);
          else {
            expect(scalesRange).not.toBeNull();
            const scales = new Float32Array(
              slice(bytes, scalesRange ?? { offset: 0, byteLength: 0 }),
            ); // [H, D]
            const codes = new Int8Array(slice(bytes, range));
            got = [];
            let k = 0;
            for (let h = 0; h < H; h++)
              for (let j = 0; j < r.lengths[h] * D; j++, k++)
                got.push(Math.fround(codes[k] * scales[h * D + (j % D)]));
          }
          expect(got).toEqual(expected);
        }
        if (dtype !== "int8") expect([r.keyScales, r.valueScales]).toEqual([null, null]);
      }
    },
  );

  it("rejects a lengths range with the wrong tag, too few bytes or an inconsistent byte length", () => {
    const bytes = encodeKvcBytes(cache, "f16");
    const head = readKvcHeader(bytes);
    const lr = kvcLengthsRange(head);
    const range = () => bytes.slice(lr.offset, lr.offset + lr.byteLength);
    const wrongTag = range();
    wrongTag[0] = 0x4b;
    expect(thrown(() => readKvcLayout(head, wrongTag)).message).toBe(
      '.kvc: lengths/positions section: tag "KPOS" where "LPOS" belongs',
    );
    expect(thrown(() => readKvcLayout(head, range().subarray(0, 20))).message).toContain(
      "lengths/positions section: truncated",
    );
    const wrongLength = range();
    wrongLength[12] ^= 1; // lengths[0] changes, the frame's byte length does not
    expect(thrown(() => readKvcLayout(head, wrongLength)).message).toMatch(
      /lengths\/positions section: byte length \d+ does not match/,
    );
  });

  it("rejects a layer outside the file", () => {
    const layout = kvcLayout(header("f16", 2, 1, 1), new Uint32Array([1, 1]));
    expect(thrown(() => kvcLayerRange(layout, 2)).code).toBe("invalid_argument");
    expect(thrown(() => kvcLayerRange(layout, -1)).code).toBe("invalid_argument");
  });
});

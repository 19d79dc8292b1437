import { describe, expect, it } from "vitest";
import { thrown } from "../testing";
import { decodeKvcBytes } from "./decode-kvc";
import { encodeKvc, encodeKvcBytes } from "./encode-kvc";
import { roundToF16 } from "./f16";
import type { KvcCache, KvcDtype } from "./kvc-format";
import { bits, concat, randomCache, sameBytes } from "./test-caches";

/** The cache of the golden files: one layer, two heads of 2 and 1 entries, head dim 2. */
const tiny = (): KvcCache => ({
  fingerprint: "0123456789abcdef",
  layers: 1,
  kvHeads: 2,
  headDim: 2,
  budget: 4,
  nextPosition: 9,
  lengths: new Uint32Array([2, 1]),
  positions: [new Int32Array([0, 5]), new Int32Array([7])],
  keys: [new Float32Array([127, -2, 64, 254]), new Float32Array([-0.5, 1.5])],
  values: [new Float32Array([0.25, -1, 2, 4]), new Float32Array([8, -8])],
});

// Expected bytes, field by field, from an independent Python encoder (struct, zlib.crc32).
const HEADER = (dtype: string, crc: string) => [
  "454b5643", // magic "EKVC"
  "0100", // version 1
  "0000", // flags
  dtype, // dtype
  "0100", // has_budget 1
  "0123456789abcdef", // fingerprint
  "01000000", // L 1
  "02000000", // H 2
  "02000000", // D 2
  "04000000", // budget 4
  "09000000", // next position 9
  crc, // header CRC
];
const LPOS = [
  "4c504f53",
  "1400000000000000", // "LPOS", 20 bytes
  "0200000001000000", // lengths [2, 1]
  "0000000005000000", // positions of head 0: [0, 5]
  "07000000", // positions of head 1: [7]
  "4d4a44be", // CRC
];
const GOLDEN: Record<KvcDtype, string[]> = {
  f32: [
    ...HEADER("0000", "c2482afc"),
    ...LPOS,
    "4b455953",
    "1800000000000000", // "KEYS", 24 bytes
    "0000fe42000000c00000804200007e43", // head 0: [127, -2, 64, 254]
    "000000bf0000c03f", // head 1: [-0.5, 1.5]
    "e7ca6185", // CRC
    "56414c53",
    "1800000000000000", // "VALS", 24 bytes
    "0000803e000080bf0000004000008040", // head 0: [0.25, -1, 2, 4]
    "00000041000000c1", // head 1: [8, -8]
    "221db204", // CRC
  ],
  f16: [
    ...HEADER("0100", "684df00d"),
    ...LPOS,
    "4b455953",
    "0c00000000000000", // "KEYS", 12 bytes
    "f05700c00054f05b", // head 0: [127, -2, 64, 254]
    "00b8003e", // head 1: [-0.5, 1.5]
    "f07bfd51", // CRC
    "56414c53",
    "0c00000000000000", // "VALS", 12 bytes
    "003400bc00400044", // head 0: [0.25, -1, 2, 4]
    "004800c8", // head 1: [8, -8]
    "72d0784f", // CRC
  ],
  int8: [
    ...HEADER("0200", "d745efc4"),
    ...LPOS,
    "4b53434c",
    "1000000000000000", // "KSCL", 16 bytes
    "0000803f00000040", // head 0: [1, 2] (absmax 127, 254)
    "0402813b0683413c", // head 1: f32(0.5 / 127), f32(1.5 / 127)
    "55368e81", // CRC
    "4b455953",
    "0600000000000000", // "KEYS", 6 bytes
    "7fff407f", // head 0: [127, -1, 64, 127]
    "817f", // head 1: [-127, 127]
    "cc6b49a7", // CRC
    "5653434c",
    "1000000000000000", // "VSCL", 16 bytes
    "0402813c0402013d", // head 0: f32(2 / 127), f32(4 / 127)
    "0402813d0402813d", // head 1: f32(8 / 127), f32(8 / 127)
    "bd20fb11", // CRC
    "56414c53",
    "0600000000000000", // "VALS", 6 bytes
    "10e07f7f", // head 0: [16, -32, 127, 127] (15.875 → 16, −31.75 → −32)
    "7f81", // head 1: [127, -127]
    "cf2d29c4", // CRC
  ],
};

const toHex = (b: Uint8Array): string =>
  Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const DTYPES: KvcDtype[] = ["f32", "f16", "int8"];

describe("encodeKvc: golden bytes", () => {
  it.each(DTYPES)("%s", (dtype) => {
    const expected = GOLDEN[dtype].join("");
    expect(toHex(encodeKvcBytes(tiny(), dtype))).toBe(expected);
    // Streamed in the smallest chunks: the same bytes, no chunk over the bound.
    const chunks = [...encodeKvc(tiny(), dtype, { chunkBytes: 64 })];
    expect(chunks.every((c) => c.length <= 64)).toBe(true);
    expect(toHex(concat(chunks))).toBe(expected);
  });

  it("decodes the golden files back to the cache (f32 exactly, f16 and int8 as rounded)", () => {
    const hex = (dtype: KvcDtype) =>
      Uint8Array.from(GOLDEN[dtype].join("").match(/../g) ?? [], (h) => Number.parseInt(h, 16));
    expect(decodeKvcBytes(hex("f32")).cache).toEqual(tiny());
    expect(decodeKvcBytes(hex("f16")).cache).toEqual(tiny()); // all values are exact halves
    const int8 = decodeKvcBytes(hex("int8"));
    expect(int8.dtype).toBe("int8");
    expect(Array.from(int8.cache.keys[0])).toEqual([127, -2, 64, 254]);
    expect(Array.from(int8.cache.values[0])).toEqual(
      [
        16 * Math.fround(2 / 127),
        -32 * Math.fround(4 / 127),
        127 * Math.fround(2 / 127),
        127 * Math.fround(4 / 127),
      ].map(Math.fround),
    );
  });
});

describe("encodeKvc → decodeKvcBytes round trips", () => {
  const cache = randomCache({ layers: 4, kvHeads: 3, headDim: 16, lengths: { max: 40 }, seed: 7 });

  it("f32 is exact, bit for bit (signed zeros, subnormals, infinities and NaN payloads included)", () => {
    const special = randomCache({ layers: 1, kvHeads: 1, headDim: 4, lengths: [3], seed: 1 });
    special.keys[0].set([
      -0,
      1e-45,
      -Infinity,
      Infinity,
      Number.NaN,
      3.4028234663852886e38,
      0,
      -1.5,
    ]);
    bits(special.keys[0])[11] = 0x7fa01234; // a NaN with a payload
    for (const c of [cache, special]) {
      const { cache: back, dtype } = decodeKvcBytes(encodeKvcBytes(c, "f32"));
      expect(dtype).toBe("f32");
      expect(back).toEqual(c);
      back.keys.forEach((k, i) => expect(bits(k)).toEqual(bits(c.keys[i])));
    }
  });

  it("f16 equals the f16 rounding of every value (and f16 is the default)", () => {
    const bytes = encodeKvcBytes(cache);
    const { cache: back, dtype } = decodeKvcBytes(bytes);
    expect(dtype).toBe("f16");
    expect({ ...back, keys: [], values: [] }).toEqual({ ...cache, keys: [], values: [] });
    for (const t of ["keys", "values"] as const) {
      back[t].forEach((x, i) => expect(Array.from(x)).toEqual(Array.from(cache[t][i], roundToF16)));
    }
  });

  // Symmetric per-channel absmax/127 quantisation: each error is at most scale / 2 = absmax_c / 254.
  const int8 = decodeKvcBytes(encodeKvcBytes(cache, "int8")).cache;
  let absmax = 0;
  let sumError = 0;
  let n = 0;
  let withinHalfScale = true;
  for (const t of ["keys", "values"] as const) {
    cache[t].forEach((x, i) => {
      const y = int8[t][i];
      const D = cache.headDim;
      const channelMax = new Float64Array(D);
      x.forEach((v, j) => (channelMax[j % D] = Math.max(channelMax[j % D], Math.abs(v))));
      x.forEach((v, j) => {
        const err = Math.abs(v - y[j]);
        absmax = Math.max(absmax, Math.abs(v));
        sumError += err;
        n++;
        if (err > (channelMax[j % D] / 127) * 0.5 * (1 + 1e-6)) withinHalfScale = false;
      });
    });
  }
  const mae = sumError / n;
  it(`int8: mean absolute error ${mae.toExponential(3)} = ${((100 * mae) / absmax).toFixed(3)}% of absmax ${absmax.toFixed(2)} (bound 1%), each error ≤ scale/2`, () => {
    expect(int8.lengths).toEqual(cache.lengths);
    expect(int8.positions).toEqual(cache.positions);
    expect(mae).toBeLessThanOrEqual(0.01 * absmax);
    expect(withinHalfScale).toBe(true);
  });

  it("int8 keeps zeros, all-zero channels and empty heads exact", () => {
    const c = randomCache({ layers: 1, kvHeads: 3, headDim: 3, lengths: [2, 0, 1], seed: 3 });
    c.keys[0].set([0, 5, 0, 0, -5, 0]); // channels 0 and 2 all zero
    const back = decodeKvcBytes(encodeKvcBytes(c, "int8")).cache;
    expect(Array.from(back.keys[0])).toEqual([0, 5, 0, 0, -5, 0]);
    expect(back.keys[1]).toEqual(new Float32Array(0));
  });

  it("keeps a null budget apart from every u32 budget, 0xffffffff included", () => {
    for (const budget of [null, 0, 1, 0xffffffff]) {
      const c = {
        ...randomCache({ layers: 1, kvHeads: 1, headDim: 1, lengths: [1], seed: 2 }),
        budget,
        nextPosition: 0xffffffff,
      };
      const back = decodeKvcBytes(encodeKvcBytes(c, "f32")).cache;
      expect(back.budget).toBe(budget);
      expect(back.nextPosition).toBe(0xffffffff);
    }
  });

  it("streams a large cache in bounded chunks, never as one copy", () => {
    const big = randomCache({ layers: 4, kvHeads: 2, headDim: 64, lengths: { max: 512 }, seed: 5 });
    for (const dtype of DTYPES) {
      const chunks = [...encodeKvc(big, dtype, { chunkBytes: 4096 })];
      expect(chunks.length).toBeGreaterThan(10);
      expect(chunks.every((c) => c.length <= 4096 && c.length > 0)).toBe(true);
      expect(new Set(chunks.map((c) => c.buffer)).size).toBe(chunks.length); // fresh arrays
      expect(sameBytes(concat(chunks), encodeKvcBytes(big, dtype))).toBe(true);
    }
  });

  it("reads subarray views of a runtime's [heads, capacity, D] buffers without copying them first", () => {
    const capacity = 8;
    const D = 2;
    const keys = Float32Array.from({ length: 2 * capacity * D }, (_, i) => i);
    const view = (h: number, n: number) => keys.subarray(h * capacity * D, (h * capacity + n) * D);
    const c: KvcCache = {
      ...tiny(),
      keys: [view(0, 2), view(1, 1)],
      values: [view(0, 2), view(1, 1)],
    };
    expect(Array.from(decodeKvcBytes(encodeKvcBytes(c, "f32")).cache.keys[1])).toEqual([16, 17]);
  });
});

describe("encodeKvc: argument errors are invalid_argument, thrown before any chunk", () => {
  const bad: [string, (c: KvcCache) => void, string][] = [
    ["an uppercase fingerprint", (c) => (c.fingerprint = "0123456789ABCDEF"), "fingerprint"],
    ["a short fingerprint", (c) => (c.fingerprint = "abc"), "fingerprint"],
    ["zero layers", (c) => (c.layers = 0), "layers 0"],
    ["a fractional head dim", (c) => (c.headDim = 1.5), "head dim"],
    ["a negative budget", (c) => (c.budget = -1), "budget"],
    ["a budget past u32", (c) => (c.budget = 2 ** 32), "budget"],
    ["next position past u32", (c) => (c.nextPosition = 2 ** 32), "next position"],
    ["too few lengths", (c) => (c.lengths = new Uint32Array([2])), "lengths"],
    ["a missing key array", (c) => c.keys.pop(), "keys must hold 2"],
    [
      "positions shorter than the length",
      (c) => (c.positions[0] = new Int32Array([1])),
      "positions of layer 0 head 0",
    ],
    [
      "values of the wrong size",
      (c) => (c.values[1] = new Float32Array(3)),
      "values of layer 0 head 1",
    ],
  ];
  it.each(bad)("%s", (_name, spoil, message) => {
    const c = tiny();
    spoil(c);
    const e = thrown(() => encodeKvc(c, "f16"));
    expect(e.code).toBe("invalid_argument");
    expect(e.message).toContain(message);
  });

  it("int8 refuses non-finite values (they have no scale); f32 and f16 keep them", () => {
    const c = tiny();
    c.values[1][1] = Number.NaN;
    const e = thrown(() => encodeKvc(c, "int8"));
    expect(e.code).toBe("invalid_argument");
    expect(e.message).toContain("values of layer 0 head 1 hold NaN (entry 0, channel 1)");
    c.values[1][1] = Infinity;
    expect(thrown(() => encodeKvc(c, "int8")).message).toContain("Infinity");
    expect(decodeKvcBytes(encodeKvcBytes(c, "f16")).cache.values[1][1]).toBe(Infinity);
  });

  it("rejects an unknown dtype and a chunk size under 64", () => {
    expect(thrown(() => encodeKvc(tiny(), "bf16" as KvcDtype)).code).toBe("invalid_argument");
    expect(thrown(() => encodeKvc(tiny(), "f16", { chunkBytes: 63 })).code).toBe(
      "invalid_argument",
    );
  });
});

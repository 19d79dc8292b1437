import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { isEpicacheError } from "../errors";
import { thrown } from "../testing";
import { type DecodedKvc, decodeKvc, decodeKvcBytes } from "./decode-kvc";
import { encodeKvcBytes } from "./encode-kvc";
import { KVC_HEADER_BYTES, type KvcDtype, readKvcHeader } from "./kvc-format";
import { kvcLayout } from "./kvc-layout";
import { chunked, randomCache, reseal, sameBytes } from "./test-caches";

const DTYPES: KvcDtype[] = ["f32", "f16", "int8"];
/** Two layers × two heads, one head empty: every section has data. */
const small = () =>
  randomCache({ layers: 2, kvHeads: 2, headDim: 3, lengths: [3, 0, 2, 1], seed: 11 });

/** What the error message must name for a byte at `offset` of a file encoding `bytes`. */
function partAt(bytes: Uint8Array, offset: number): string {
  if (offset < KVC_HEADER_BYTES) return "header";
  const { cache, dtype } = decodeKvcBytes(bytes);
  const layout = kvcLayout(readKvcHeader(bytes), cache.lengths);
  expect(dtype).toBe(layout.header.dtype);
  const span = layout.sections.find((s) => s.offset <= offset && offset < s.end);
  if (span === undefined) throw new Error(`offset ${offset} is in no section`);
  return `${span.part} section`;
}

/** "ok" or the code of the EpicacheError thrown; anything else (a TypeError, a RangeError…) fails the test. */
function outcome(f: () => unknown): string {
  try {
    f();
    return "ok";
  } catch (e) {
    if (isEpicacheError(e)) return e.code;
    throw e;
  }
}

async function outcomeAsync(f: () => Promise<unknown>): Promise<string> {
  try {
    await f();
    return "ok";
  } catch (e) {
    if (isEpicacheError(e)) return e.code;
    throw e;
  }
}

async function rejection(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (e) {
    if (isEpicacheError(e)) return { code: e.code, message: e.message };
    throw e;
  }
  throw new Error("expected a rejection");
}

/** `bytes` with header fields overwritten (u16 or u32 by size) and its CRCs recomputed. */
function patchHeader(
  bytes: Uint8Array,
  fields: [offset: number, size: 2 | 4, value: number][],
): Uint8Array {
  const out = bytes.slice();
  const dv = new DataView(out.buffer);
  for (const [offset, size, value] of fields) {
    if (size === 2) dv.setUint16(offset, value, true);
    else dv.setUint32(offset, value, true);
  }
  return reseal(out);
}

describe("decodeKvc: every flipped byte is caught, naming its part", () => {
  it.each(DTYPES)("%s", (dtype) => {
    const bytes = encodeKvcBytes(small(), dtype);
    const seen = new Set<string>();
    for (let i = 0; i < bytes.length; i++) {
      const part = partAt(bytes, i);
      seen.add(part);
      for (const mask of [0x01, 0x80, 0xff]) {
        const bad = bytes.slice();
        bad[i] ^= mask;
        const e = thrown(() => decodeKvcBytes(bad));
        expect(e.code).toBe("store_invalid");
        if (!e.message.includes(part))
          expect(`byte ${i} ^ 0x${mask.toString(16)}: ${e.message}`).toContain(part);
      }
    }
    const scales = dtype === "int8" ? ["key scales section", "value scales section"] : [];
    expect([...seen].sort()).toEqual(
      ["header", "lengths/positions section", "keys section", "values section", ...scales].sort(),
    );
  });
});

describe("decodeKvc: truncation and trailing bytes", () => {
  it.each(DTYPES)(
    "every truncation of a %s file is store_invalid, whole or streamed",
    async (dtype) => {
      const bytes = encodeKvcBytes(small(), dtype);
      for (let n = 0; n < bytes.length; n++) {
        const cut = bytes.subarray(0, n);
        expect(thrown(() => decodeKvcBytes(cut)).code).toBe("store_invalid");
        expect((await rejection(decodeKvc(chunked(cut, [7, 1, 30])))).code).toBe("store_invalid");
      }
      // 80 bytes end inside the lengths/positions section (it spans 44 … 100).
      expect(thrown(() => decodeKvcBytes(bytes.subarray(0, 80))).message).toContain("truncated");
      expect((await rejection(decodeKvc(chunked(bytes.subarray(0, 80), [64])))).message).toBe(
        ".kvc: lengths/positions section: truncated: the data ends inside it",
      );
    },
  );

  it("rejects trailing bytes, whole or streamed", async () => {
    const bytes = encodeKvcBytes(small(), "f16");
    const longer = new Uint8Array(bytes.length + 3);
    longer.set(bytes);
    expect(thrown(() => decodeKvcBytes(longer)).message).toBe(
      ".kvc: 3 trailing bytes after the values section",
    );
    expect((await rejection(decodeKvc(chunked(longer, [5])))).message).toBe(
      ".kvc: 3 trailing bytes after the values section",
    );
    expect(
      (await rejection(decodeKvc([bytes, new Uint8Array(0), new Uint8Array(2)]))).message,
    ).toContain("2 trailing bytes");
  });

  it("checks a stream's known byteLength against the header before allocating", async () => {
    const bytes = encodeKvcBytes(small(), "f32");
    const e = await rejection(
      decodeKvc(chunked(bytes, [64]), { byteLength: bytes.length + 1, source: "ep-0.kvc" }),
    );
    expect(e.message).toBe("ep-0.kvc: 1 trailing bytes after the values section");
    // A file whose (CRC-valid) header and lengths claim 10^8 entries fails before any array is made.
    const huge = bytes.slice();
    const dv = new DataView(huge.buffer);
    dv.setUint32(56, 1e8, true);
    dv.setUint32(48, 4 * (4 + 1e8 + 3), true);
    const claim = reseal(huge);
    expect(thrown(() => decodeKvcBytes(claim)).message).toMatch(
      /truncated: the header and lengths describe \d+ bytes, the file has 276$/,
    );
    expect(
      (await rejection(decodeKvc(chunked(claim, [64]), { byteLength: claim.length }))).message,
    ).toContain("truncated");
  });
});

describe("decodeKvc: unsupported or invalid headers are clear errors", () => {
  const bytes = encodeKvcBytes(small(), "f16");
  const cases: [string, [number, 2 | 4, number][], string][] = [
    ["version 2", [[4, 2, 2]], "header: format version 2 is not supported (this reader knows 1)"],
    ["version 0", [[4, 2, 0]], "header: format version 0 is not supported"],
    ["dtype 3", [[8, 2, 3]], "header: dtype code 3 is unknown (0 f32, 1 f16, 2 int8)"],
    ["a reserved flag", [[6, 2, 1]], "header: flags 0x0001 are set; version 1 defines none"],
    ["the top flag", [[6, 2, 0x8000]], "header: flags 0x8000 are set"],
    ["has_budget 2", [[10, 2, 2]], "header: has_budget is 2 (0 or 1)"],
    ["a budget without has_budget", [[10, 2, 0]], "header: budget field is 64 but has_budget is 0"],
    ["zero layers", [[20, 4, 0]], "header: layers 0 is out of range"],
    ["zero heads", [[24, 4, 0]], "header: KV heads 0 is out of range"],
    ["a head dim of 70000", [[28, 4, 70000]], "header: head dim 70000 is out of range"],
    [
      "65535 × 65535 heads",
      [
        [20, 4, 65535],
        [24, 4, 65535],
      ],
      "exceeds 16777216",
    ],
  ];
  it.each(cases)("%s", (_name, fields, message) => {
    const e = thrown(() => decodeKvcBytes(patchHeader(bytes, fields)));
    expect(e.code).toBe("store_invalid");
    expect(e.message).toContain(message);
  });

  it("names another version even when its header is shorter than version 1's", () => {
    const v2 = Uint8Array.from([0x45, 0x4b, 0x56, 0x43, 2, 0, 0, 0]);
    expect(thrown(() => decodeKvcBytes(v2)).message).toBe(
      ".kvc: header: format version 2 is not supported (this reader knows 1)",
    );
  });

  it("names a file that is not a .kvc, and the source when given", () => {
    const gguf = new TextEncoder().encode("GGUF and then some more bytes of a model file ....");
    expect(thrown(() => decodeKvcBytes(gguf, { source: "episode-3.kvc" })).message).toBe(
      'episode-3.kvc: header: bad magic 0x46554747 (expected "EKVC"): not a .kvc file',
    );
    expect(thrown(() => decodeKvcBytes(new Uint8Array(0))).message).toBe(
      ".kvc: header: truncated: the data ends inside it",
    );
  });

  it("keeps the header CRC honest: a changed field without a new CRC is a mismatch", () => {
    const bad = bytes.slice();
    bad[36] ^= 1; // next position
    expect(thrown(() => decodeKvcBytes(bad)).message).toMatch(
      /^\.kvc: header: CRC-32 mismatch \(stored 0x[0-9a-f]{8}, computed 0x[0-9a-f]{8}\)$/,
    );
  });
});

describe("decodeKvc: data that passes its CRC but breaks the format", () => {
  it("rejects the int8 code -128, and negative or NaN scales", () => {
    const bytes = encodeKvcBytes(small(), "int8");
    const layout = kvcLayout(readKvcHeader(bytes), small().lengths);
    const withByte = (at: number, value: number) => {
      const b = bytes.slice();
      b[at] = value;
      return reseal(b);
    };
    const withFloat = (at: number, value: number) => {
      const b = bytes.slice();
      new DataView(b.buffer).setFloat32(at, value, true);
      return reseal(b);
    };
    const keys = layout.keys.bodyOffset;
    expect(thrown(() => decodeKvcBytes(withByte(keys + 4, 0x80))).message).toBe(
      ".kvc: keys section: int8 code -128 (outside -127 … 127) at layer 0 head 0 entry 1 channel 1",
    );
    const valueScales = layout.valueScales?.bodyOffset ?? 0;
    expect(thrown(() => decodeKvcBytes(withFloat(valueScales, -0.5))).message).toBe(
      ".kvc: value scales section: scale -0.5 of layer 0 head 0 channel 0 is not finite and ≥ 0",
    );
    expect(thrown(() => decodeKvcBytes(withFloat(valueScales + 4, Number.NaN))).message).toContain(
      "scale NaN of layer 0 head 0 channel 1",
    );
    expect(
      thrown(() => decodeKvcBytes(withFloat(valueScales + 4 * 7, Infinity))).message,
    ).toContain("scale Infinity of layer 1 head 0 channel 1");
  });

  it("rejects wrong tags and lengths that disagree with the header", () => {
    const bytes = encodeKvcBytes(small(), "f32");
    const layout = kvcLayout(readKvcHeader(bytes), small().lengths);
    const b = bytes.slice();
    b.set([0x4b, 0x45, 0x59, 0x5a], layout.keys.offset); // "KEYZ"
    expect(thrown(() => decodeKvcBytes(reseal(b))).message).toBe(
      '.kvc: keys section: tag "KEYZ" where "KEYS" belongs',
    );
    const c = bytes.slice();
    new DataView(c.buffer).setUint32(layout.values.offset + 8, 1, true); // 2^32 more bytes
    expect(thrown(() => decodeKvcBytes(c)).message).toBe(
      `.kvc: values section: byte length ${2 ** 32 + layout.values.bodyBytes} does not match the ${layout.values.bodyBytes} that the header and lengths imply`,
    );
    const d = bytes.slice();
    new DataView(d.buffer).setUint32(layout.lengthsPositions.bodyOffset, 2 ** 31, true); // lengths[0]
    expect(thrown(() => decodeKvcBytes(reseal(d))).message).toBe(
      ".kvc: lengths/positions section: layer 0 head 0 has 2147483648 entries (at most 2147483647)",
    );
  });
});

describe("decodeKvc: streaming equals whole-buffer decoding", () => {
  const cacheArb = fc.record({
    layers: fc.integer({ min: 1, max: 3 }),
    kvHeads: fc.integer({ min: 1, max: 3 }),
    headDim: fc.integer({ min: 1, max: 5 }),
    max: fc.integer({ min: 0, max: 6 }),
    seed: fc.integer(),
    dtype: fc.constantFrom<KvcDtype>("f32", "f16", "int8"),
  });
  const sizesArb = fc.array(fc.integer({ min: 0, max: 97 }), { minLength: 1, maxLength: 20 });

  it("for random caches cut into random chunk sizes, async and sync sources (property)", async () => {
    await fc.assert(
      fc.asyncProperty(cacheArb, sizesArb, async (o, sizes) => {
        const cache = randomCache({ ...o, lengths: { max: o.max } });
        const bytes = encodeKvcBytes(cache, o.dtype);
        const whole = decodeKvcBytes(bytes);
        expect(await decodeKvc(chunked(bytes, sizes))).toEqual(whole);
        const pieces: Uint8Array[] = [];
        for await (const p of chunked(bytes, sizes)) pieces.push(p);
        expect(await decodeKvc(pieces)).toEqual(whole);
        expect(await decodeKvc(bytes)).toEqual(whole);
      }),
      { numRuns: 200 },
    );
  });

  it("decodes a larger cache streamed in 1000-byte chunks like the whole buffer", async () => {
    const cache = randomCache({
      layers: 3,
      kvHeads: 3,
      headDim: 64,
      lengths: { max: 300 },
      seed: 4,
    });
    for (const dtype of DTYPES) {
      const bytes = encodeKvcBytes(cache, dtype);
      const streamed: DecodedKvc = await decodeKvc(chunked(bytes, [1000]));
      const whole = decodeKvcBytes(bytes);
      expect(streamed.cache.lengths).toEqual(whole.cache.lengths);
      for (const t of ["keys", "values"] as const) {
        // Byte comparison: a deep toEqual of 10^5 floats takes seconds.
        const same = streamed.cache[t].every((x, i) =>
          sameBytes(new Uint8Array(x.buffer), new Uint8Array(whole.cache[t][i].buffer)),
        );
        expect(same).toBe(true);
      }
    }
  });

  it("closes the source when it stops early, and rejects chunks that are not bytes", async () => {
    let closed = false;
    async function* source(): AsyncGenerator<Uint8Array> {
      try {
        yield new TextEncoder().encode("not a kvc file at all");
        yield new Uint8Array(100);
      } finally {
        closed = true;
      }
    }
    expect((await rejection(decodeKvc(source()))).code).toBe("store_invalid");
    expect(closed).toBe(true);
    // Deliberately not bytes: a caller outside TypeScript can pass anything.
    const notBytes = [
      encodeKvcBytes(small(), "f16").subarray(0, 10),
      "text",
    ] as unknown as Uint8Array[];
    expect((await rejection(decodeKvc(notBytes))).code).toBe("invalid_argument");
  });
});

describe("decodeKvc: fuzz, nothing but store_invalid escapes", () => {
  const magicVersion = [0x45, 0x4b, 0x56, 0x43, 1, 0];

  it("random bytes (property)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.boolean(), (random, withMagic) => {
        const bytes = random.slice();
        if (withMagic && bytes.length >= 6) bytes.set(magicVersion);
        const result = outcome(() => decodeKvcBytes(reseal(bytes)));
        expect(result).toBe("store_invalid");
      }),
      { numRuns: 2000 },
    );
  });

  it("random headers with a valid CRC over random or real bodies (property)", () => {
    const real = encodeKvcBytes(small(), "int8");
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 38, maxLength: 38 }),
        fc.constantFrom(0, 1, 2, 3),
        fc.nat({ max: 3 }),
        fc.boolean(),
        (fields, dtype, small16, realBody) => {
          const bytes = realBody ? real.slice() : new Uint8Array(400);
          bytes.set(magicVersion);
          bytes.set(fields, 6);
          const dv = new DataView(bytes.buffer);
          // Mostly-valid small fields so the fuzz gets past the first checks often.
          dv.setUint16(6, small16 === 0 ? fields[0] : 0, true);
          dv.setUint16(8, dtype, true);
          dv.setUint32(20, 1 + (fields[14] % 4), true);
          dv.setUint32(24, 1 + (fields[18] % 4), true);
          dv.setUint32(28, 1 + (fields[22] % 8), true);
          expect(["ok", "store_invalid"]).toContain(outcome(() => decodeKvcBytes(reseal(bytes))));
        },
      ),
      { numRuns: 2000 },
    );
  });

  type Mutation =
    | { kind: "set"; at: number; value: number }
    | { kind: "insert"; at: number; bytes: Uint8Array }
    | { kind: "delete"; at: number; n: number }
    | { kind: "truncate"; at: number };
  const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
    fc.record({
      kind: fc.constant("set" as const),
      at: fc.nat(),
      value: fc.integer({ min: 0, max: 255 }),
    }),
    fc.record({
      kind: fc.constant("insert" as const),
      at: fc.nat(),
      bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }),
    }),
    fc.record({
      kind: fc.constant("delete" as const),
      at: fc.nat(),
      n: fc.integer({ min: 1, max: 8 }),
    }),
    fc.record({ kind: fc.constant("truncate" as const), at: fc.nat() }),
  );
  function mutate(bytes: Uint8Array, mutations: Mutation[]): Uint8Array {
    let b = bytes;
    for (const m of mutations) {
      const at = b.length === 0 ? 0 : m.at % b.length;
      if (m.kind === "set") {
        b = b.slice();
        if (b.length > 0) b[at] = m.value;
      } else if (m.kind === "insert")
        b = Uint8Array.from([...b.subarray(0, at), ...m.bytes, ...b.subarray(at)]);
      else if (m.kind === "delete")
        b = Uint8Array.from([...b.subarray(0, at), ...b.subarray(at + m.n)]);
      else b = b.slice(0, at);
    }
    return b;
  }

  it("random mutations of valid files, raw and with CRCs recomputed, whole and streamed (property)", async () => {
    const files = DTYPES.map((dtype) => encodeKvcBytes(small(), dtype));
    let decodedOk = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.nat({ max: 2 }),
        fc.array(mutationArb, { minLength: 1, maxLength: 4 }),
        fc.boolean(),
        fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 1, maxLength: 5 }),
        async (file, mutations, resealed, sizes) => {
          const mutated = mutate(files[file], mutations);
          const bytes = resealed ? reseal(mutated) : mutated;
          const whole = outcome(() => decodeKvcBytes(bytes));
          const streamed = await outcomeAsync(() => decodeKvc(chunked(bytes, sizes)));
          expect(["ok", "store_invalid"]).toContain(whole);
          expect(streamed).toBe(whole);
          if (whole === "ok") {
            decodedOk++;
            expect(await decodeKvc(chunked(bytes, sizes))).toEqual(decodeKvcBytes(bytes));
          }
          if (!resealed && whole === "ok") expect(bytes).toEqual(files[file]); // raw damage is always caught
        },
      ),
      { numRuns: 3000 },
    );
    // Resealed mutations of data bytes decode (to other values): the fuzz reaches past every check.
    expect(decodedOk).toBeGreaterThan(0);
  });
});

describe("decodeKvc into caller arrays", () => {
  it.each(DTYPES)(
    "fills the arrays it is given (views into one buffer) with what it would allocate, %s",
    async (dtype) => {
      const bytes = encodeKvcBytes(small(), dtype);
      const expected = decodeKvcBytes(bytes).cache;
      const D = expected.headDim;
      const total = expected.lengths.reduce((a, b) => a + b, 0);
      const pos = new Int32Array(total),
        keys = new Float32Array(total * D),
        values = new Float32Array(total * D);
      const into = (_: unknown, lengths: Uint32Array) => {
        const out = {
          positions: [] as Int32Array[],
          keys: [] as Float32Array[],
          values: [] as Float32Array[],
        };
        let at = 0;
        for (const n of lengths) {
          out.positions.push(pos.subarray(at, at + n));
          out.keys.push(keys.subarray(at * D, (at + n) * D));
          out.values.push(values.subarray(at * D, (at + n) * D));
          at += n;
        }
        return out;
      };
      const { cache } = await decodeKvc(chunked(bytes, [5, 13]), { into });
      expect(cache).toEqual(expected);
      expect(cache.keys[2].buffer).toBe(keys.buffer);
      expect(Array.from(keys.subarray(0, 3 * D))).toEqual(Array.from(expected.keys[0]));
      expect(Array.from(pos)).toEqual(expected.positions.flatMap((p) => Array.from(p)));
    },
  );

  it("refuses arrays of the wrong size", () => {
    const bytes = encodeKvcBytes(small(), "f32");
    const into = (_: unknown, lengths: Uint32Array) => ({
      positions: Array.from(lengths, (n) => new Int32Array(n)),
      keys: Array.from(lengths, (n) => new Float32Array(n * 3 + 1)),
      values: Array.from(lengths, (n) => new Float32Array(n * 3)),
    });
    expect(thrown(() => decodeKvcBytes(bytes, { into })).code).toBe("invalid_argument");
  });
});

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { isEpicacheError } from "@epicache/shared";
import { bufferSource } from "../gguf";
import { f32ToBf16, roundTo, writeSafetensors, type SafetensorsEntry } from "../testing";
import { MAX_HEADER_BYTES, parseSafetensors, toFloat32 } from "./reader";

const ramp = (n: number, scale: number) =>
  Float32Array.from({ length: n }, (_, i) => (i - n / 2) * scale);

const ENTRIES: SafetensorsEntry[] = [
  { name: "model.embed_tokens.weight", dtype: "BF16", shape: [6, 4], data: ramp(24, 0.37) },
  {
    name: "model.norm.weight",
    dtype: "F32",
    shape: [4],
    data: Float32Array.of(1, -0.5, 3.25, 1e-7),
  },
  { name: "lm_head.weight", dtype: "F16", shape: [3, 4], data: ramp(12, 0.013) },
  { name: "empty", dtype: "F32", shape: [0, 4], data: new Float32Array(0) },
];
const small = () => writeSafetensors(ENTRIES, { format: "pt" });

/** Runs `f`; if it throws, the error must carry one of our codes. */
function expectCodedError(f: () => unknown): void {
  try {
    f();
  } catch (e) {
    expect(isEpicacheError(e), `not a coded error: ${String(e)}`).toBe(true);
  }
}

function withHeader(header: string, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const head = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + head.byteLength + data.byteLength);
  new DataView(out.buffer).setBigUint64(0, BigInt(head.byteLength), true);
  out.set(head, 8);
  out.set(data, 8 + head.byteLength);
  return out;
}

const bitsOf = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

describe("safetensors reader", () => {
  it("writes the documented bytes (golden)", () => {
    const bytes = writeSafetensors([
      { name: "x", dtype: "F32", shape: [2], data: Float32Array.of(1, -2) },
    ]);
    const header = '{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}  '; // 54 bytes, padded to 56
    expect(Array.from(bytes)).toEqual([
      56,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      ...new TextEncoder().encode(header),
      0x00,
      0x00,
      0x80,
      0x3f,
      0x00,
      0x00,
      0x00,
      0xc0,
    ]);
    const file = parseSafetensors(bufferSource(bytes));
    expect(file.tensors.get("x")).toEqual({
      name: "x",
      dtype: "F32",
      shape: [2],
      elementCount: 2,
      offset: 64,
      byteLength: 8,
    });
  });

  it("round-trips tensors of every float dtype with the header's metadata", () => {
    const file = parseSafetensors(bufferSource(small()));
    expect(file.metadata).toEqual({ format: "pt" });
    expect([...file.tensors.keys()].sort()).toEqual(ENTRIES.map((e) => e.name).sort());
    for (const e of ENTRIES) {
      const info = file.tensors.get(e.name);
      expect(info).toMatchObject({ dtype: e.dtype, shape: e.shape, elementCount: e.data.length });
      const values = file.readTensor(info as NonNullable<typeof info>);
      expect(bitsOf(values)).toEqual(bitsOf(roundTo(e.dtype, e.data)));
    }
    // The stored values really are rounded (bf16 keeps 8 significant bits), so the test above means something.
    expect(roundTo("BF16", ENTRIES[0].data)).not.toEqual(ENTRIES[0].data);
  });

  it("widens every bf16 and f16 bit pattern exactly, aligned or not", () => {
    const all = new Uint8Array(2 * 65536 + 1);
    const dv = new DataView(all.buffer, 1); // odd offset: the DataView path
    for (let h = 0; h < 65536; h++) dv.setUint16(h * 2, h, true);
    const aligned = all.slice(1);
    for (const bytes of [aligned, all.subarray(1)]) {
      const bf = toFloat32("BF16", bytes, 65536);
      for (let h = 0; h < 65536; h++) {
        if (bitsOf(bf.subarray(h, h + 1))[0] !== (h << 16) >>> 0)
          throw new Error(`bf16 ${h.toString(16)} widened wrongly`);
      }
      const f = toFloat32("F16", bytes, 65536);
      for (let h = 0; h < 65536; h++) {
        const sign = h & 0x8000 ? -1 : 1,
          e = (h >> 10) & 0x1f,
          m = h & 0x3ff;
        const want =
          e === 31
            ? m
              ? NaN
              : sign * Infinity
            : e === 0
              ? sign * m * 2 ** -24
              : sign * (1 + m / 1024) * 2 ** (e - 15);
        if (!Object.is(f[h], want) && !(Number.isNaN(f[h]) && Number.isNaN(want)))
          throw new Error(`f16 ${h.toString(16)} is ${f[h]}, not ${want}`);
      }
    }
  });

  it("writes bf16 rounding to nearest even, as PyTorch's cast does", () => {
    const bf = (bits: number) => f32ToBf16(new Float32Array(Uint32Array.of(bits).buffer)[0]);
    expect(bf(0x3f808000)).toBe(0x3f80); // a tie, down to the even 0x3f80
    expect(bf(0x3f818000)).toBe(0x3f82); // a tie, up to the even 0x3f82
    expect(bf(0x3f808001)).toBe(0x3f81); // above the tie
    expect(bf(0x7f7fffff)).toBe(0x7f80); // the largest float rounds to infinity
    expect(Number.isNaN(roundTo("BF16", Float32Array.of(NaN))[0])).toBe(true);
  });

  it("gives model_invalid for every truncation point", () => {
    const bytes = small();
    for (let n = 0; n < bytes.length; n++) {
      let err: unknown;
      try {
        parseSafetensors(bufferSource(bytes.subarray(0, n)));
      } catch (e) {
        err = e;
      }
      expect(err, `truncated at ${n}`).toMatchObject({ code: "model_invalid" });
    }
  });

  it("flags a huge declared header without allocating it", () => {
    const bytes = small();
    new DataView(bytes.buffer).setBigUint64(0, 1n << 62n, true);
    expect(() => parseSafetensors(bufferSource(bytes))).toThrow(
      expect.objectContaining({ code: "model_invalid" }),
    );
    // A file large enough to hold such a header: refused before its bytes are read.
    const size = new Uint8Array(8);
    new DataView(size.buffer).setBigUint64(0, BigInt(MAX_HEADER_BYTES + 1), true);
    const huge = {
      size: 2 ** 31,
      read: (offset: number, length: number) => {
        if (offset !== 0 || length !== 8) throw new Error(`read ${length} bytes at ${offset}`);
        return size;
      },
      close: () => {},
    };
    expect(() => parseSafetensors(huge)).toThrow(
      expect.objectContaining({ code: "model_invalid", message: expect.stringMatching(/limit/) }),
    );
  });

  it("rejects headers whose tensors do not tile the data", () => {
    const t = (dtype: string, shape: number[], offsets: number[]) =>
      JSON.stringify({ dtype, shape, data_offsets: offsets });
    const cases: Array<[string, string, number, RegExp]> = [
      ["wrong size", `{"a":${t("F32", [3], [0, 8])}}`, 8, /data_offsets/],
      [
        "overlap",
        `{"a":${t("F32", [2], [0, 8])},"b":${t("F32", [2], [4, 12])}}`,
        12,
        /overlapping/,
      ],
      ["gap", `{"a":${t("F32", [1], [0, 4])},"b":${t("F32", [1], [8, 12])}}`, 12, /gap/],
      ["trailing bytes", `{"a":${t("F32", [1], [0, 4])}}`, 8, /cover 4 data bytes/],
      ["past the end", `{"a":${t("F32", [4], [0, 16])}}`, 8, /ends at data byte 16/],
      ["end before begin", `{"a":${t("F32", [0], [8, 0])}}`, 8, /data_offsets/],
      ["negative dim", `{"a":${t("F32", [-1], [0, 0])}}`, 0, /bad shape/],
      ["fractional offset", `{"a":${t("F32", [1], [0.5, 4.5])}}`, 8, /bad data_offsets/],
      ["overflowing shape", `{"a":${t("U8", [2 ** 40, 2 ** 40], [0, 0])}}`, 0, /too large/],
      ["not an object", "[1, 2]", 0, /not a JSON object/],
      ["not JSON", "{nope", 0, /not valid JSON/],
      ["metadata value", '{"__metadata__":{"a":1}}', 0, /__metadata__\.a/],
    ];
    for (const [name, header, dataBytes, message] of cases) {
      const bytes = withHeader(header, new Uint8Array(dataBytes));
      expect(() => parseSafetensors(bufferSource(bytes)), name).toThrow(
        expect.objectContaining({ code: "model_invalid", message: expect.stringMatching(message) }),
      );
    }
    const bad = withHeader(`{"a":${t("F4", [2], [0, 1])}}`, new Uint8Array(1));
    expect(() => parseSafetensors(bufferSource(bad))).toThrow(
      expect.objectContaining({ code: "model_unsupported" }),
    );
    const utf8 = withHeader("{}");
    utf8[9] = 0xff;
    expect(() => parseSafetensors(bufferSource(utf8))).toThrow(/UTF-8/);
  });

  it("reads integer tensors' headers but refuses to widen them", () => {
    const bytes = withHeader(
      JSON.stringify({ ids: { dtype: "I64", shape: [2], data_offsets: [0, 16] } }),
      new Uint8Array(16),
    );
    const file = parseSafetensors(bufferSource(bytes));
    const info = file.tensors.get("ids");
    expect(info?.byteLength).toBe(16);
    expect(() => file.readTensor(info as NonNullable<typeof info>)).toThrow(
      expect.objectContaining({ code: "model_unsupported" }),
    );
  });

  it("never throws anything but coded errors on corrupted bytes (fuzzed)", () => {
    const base = small();
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
          expectCodedError(() => {
            const file = parseSafetensors(bufferSource(bytes));
            for (const info of file.tensors.values()) file.readTensor(info);
          });
        },
      ),
      { numRuns: 500, seed: 42 },
    );
  });
});

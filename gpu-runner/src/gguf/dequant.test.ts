import { describe, expect, it } from "vitest";
import { f16Value, f32ToF16, quantize } from "../testing";
import { dequantize, f16ToF32 } from "./dequant";

describe("dequantisation", () => {
  it("decodes f16 exactly, including subnormals, infinities and NaN", () => {
    expect(f16ToF32(0x3c00)).toBe(1);
    expect(f16ToF32(0xc000)).toBe(-2);
    expect(f16ToF32(0x0001)).toBe(2 ** -24);
    expect(f16ToF32(0x7bff)).toBe(65504);
    expect(f16ToF32(0x7c00)).toBe(Infinity);
    expect(f16ToF32(0xfc00)).toBe(-Infinity);
    expect(Number.isNaN(f16ToF32(0x7e00))).toBe(true);
    for (let h = 0; h < 0x7c00; h += 97) expect(f16ToF32(h)).toBe(f16Value(h));
  });

  it("Q4_0: (nibble − 8)·d, low nibbles first", () => {
    const block = new Uint8Array(18);
    new DataView(block.buffer).setUint16(0, f32ToF16(0.5), true);
    block[2] = 0x9f; // value 0: 15 → 3.5; value 16: 9 → 0.5
    const x = dequantize("Q4_0", block, 32);
    expect(x[0]).toBe(3.5);
    expect(x[16]).toBe(0.5);
    expect(x[1]).toBe(-4); // nibble 0
  });

  it("Q4_1: nibble·d + m", () => {
    const block = new Uint8Array(20);
    const dv = new DataView(block.buffer);
    dv.setUint16(0, f32ToF16(0.25), true);
    dv.setUint16(2, f32ToF16(-1), true);
    block[4] = 0x4c; // 12 → 2, 4 → 0
    const x = dequantize("Q4_1", block, 32);
    expect(x[0]).toBe(2);
    expect(x[16]).toBe(0);
    expect(x[31]).toBe(-1);
  });

  it("Q8_0: q·d", () => {
    const block = new Uint8Array(34);
    new DataView(block.buffer).setUint16(0, f32ToF16(0.125), true);
    block[2] = 0x80; // −128
    block[3] = 8;
    const x = dequantize("Q8_0", block, 32);
    expect(x[0]).toBe(-16);
    expect(x[1]).toBe(1);
  });

  it("round-trips through ggml's quantisers within each type's step", () => {
    const x = Float32Array.from({ length: 256 }, (_, i) => Math.sin(i * 0.37) * 3);
    for (const [type, tol] of [
      ["F32", 0],
      ["F16", 2e-3],
      ["BF16", 2e-2],
      ["Q8_0", 0.03],
      ["Q4_1", 0.25],
      ["Q4_0", 0.45],
    ] as const) {
      const y = dequantize(type, quantize(type, x), x.length);
      let err = 0;
      for (let i = 0; i < x.length; i++) err = Math.max(err, Math.abs(x[i] - y[i]));
      expect(err, type).toBeLessThanOrEqual(tol);
    }
  });

  it("rejects short data with a code", () => {
    expect(() => dequantize("Q4_1", new Uint8Array(19), 32)).toThrow(
      expect.objectContaining({ code: "gguf_truncated" }),
    );
  });
});

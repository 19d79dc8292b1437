import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { f16BitsToF32, f32BitsToF16Bits, f32ToF16Bits, roundToF16 } from "./f16";

const f32FromBits = (bits: number): number => new Float32Array(new Uint32Array([bits]).buffer)[0];

/**
 * Reference rounding: binary search for the two neighbouring positive halves, then compare 2·|v| with
 * their sum (exact in f64, unlike the two differences near the subnormals), ties to the even pattern.
 */
function referenceF16(value: number): number {
  const v = Math.fround(value);
  if (Number.isNaN(v)) return 0x7e00;
  const sign = v < 0 || Object.is(v, -0) ? 0x8000 : 0;
  const a = Math.abs(v);
  if (a >= 65520) return sign | 0x7c00;
  let lo = 0; // largest finite positive pattern with value ≤ a
  let hi = 0x7bff;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (f16BitsToF32(mid) <= a) lo = mid;
    else hi = mid - 1;
  }
  if (f16BitsToF32(lo) === a) return sign | lo;
  const up = lo + 1;
  const twice = 2 * a;
  const sum = f16BitsToF32(lo) + f16BitsToF32(up);
  if (twice < sum) return sign | lo;
  if (twice > sum) return sign | up;
  return sign | (lo % 2 === 0 ? lo : up);
}

describe("f32 → f16", () => {
  it.each([
    ["1", 1, 0x3c00],
    ["-2", -2, 0xc000],
    ["0.1", 0.1, 0x2e66],
    ["1/3", 1 / 3, 0x3555],
    ["+0", 0, 0x0000],
    ["-0", -0, 0x8000],
    ["the largest half 65504", 65504, 0x7bff],
    ["65519.99 (below the tie) → 65504", 65519.99, 0x7bff],
    ["65520 (the tie with 2^16) → even: Infinity", 65520, 0x7c00],
    ["1e5 overflows to Infinity", 1e5, 0x7c00],
    ["-1e9 overflows to -Infinity", -1e9, 0xfc00],
    ["f32 max → Infinity", 3.4028234663852886e38, 0x7c00],
    ["Infinity", Infinity, 0x7c00],
    ["-Infinity", -Infinity, 0xfc00],
    ["the smallest normal 2^-14", 2 ** -14, 0x0400],
    ["the largest subnormal 1023·2^-24", 1023 * 2 ** -24, 0x03ff],
    ["the smallest subnormal 2^-24", 2 ** -24, 0x0001],
    ["2^-25, the tie with 0 → even: 0", 2 ** -25, 0x0000],
    ["-2^-25 → -0", -(2 ** -25), 0x8000],
    ["just above 2^-25 → 2^-24", f32FromBits(0x33000001), 0x0001],
    ["3·2^-25, the tie between 1 and 2 subnormal units → 2", 3 * 2 ** -25, 0x0002],
    ["5·2^-25, the tie between 2 and 3 → 2", 5 * 2 ** -25, 0x0002],
    [
      "1023.5·2^-24, the tie between the largest subnormal and 2^-14 → 2^-14",
      1023.5 * 2 ** -24,
      0x0400,
    ],
    ["an f32 subnormal → 0", f32FromBits(0x00000001), 0x0000],
    ["1 + 2^-11, the tie → even 1", 1 + 2 ** -11, 0x3c00],
    ["1 + 3·2^-11, the tie → even 1 + 2^-9", 1 + 3 * 2 ** -11, 0x3c02],
    ["1 + 2^-11 + 2^-23 (above the tie) → up", 1 + 2 ** -11 + 2 ** -23, 0x3c01],
    ["2047.5 → 2048 (carry into the exponent)", 2047.5, 0x6800],
  ])("%s", (_name, value, bits) => {
    expect(f32ToF16Bits(value)).toBe(bits);
    expect(referenceF16(value)).toBe(bits);
  });

  it("keeps NaN a (quiet) NaN, sign and top payload bits included", () => {
    expect(f32BitsToF16Bits(0x7fc00000)).toBe(0x7e00);
    expect(f32BitsToF16Bits(0xffc00000)).toBe(0xfe00);
    expect(f32BitsToF16Bits(0x7f800001)).toBe(0x7e00); // signalling NaN with a low payload: still NaN, not Infinity
    expect(f32BitsToF16Bits(0x7fa00000)).toBe(0x7f00);
    expect(f16BitsToF32(f32ToF16Bits(Number.NaN))).toBeNaN();
  });

  it("rounds to nearest even like the reference on random f32 bit patterns (property)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), (bits) => {
        const value = f32FromBits(bits);
        const half = f32BitsToF16Bits(bits);
        if (Number.isNaN(value)) expect(Number.isNaN(f16BitsToF32(half))).toBe(true);
        else expect(half).toBe(referenceF16(value));
      }),
      { numRuns: 20_000 },
    );
  });

  it("rounds values near every half boundary like the reference (exhaustive over the halves)", () => {
    for (let h = 0; h < 0x7c00; h++) {
      // The half itself, its midpoint with the next half, and the f32s right next to that midpoint.
      const v = f16BitsToF32(h);
      const mid = (v + f16BitsToF32(h + 1)) / 2;
      for (const x of [v, -v, mid, -mid, nextF32(mid, 1), nextF32(mid, -1)]) {
        if (f32ToF16Bits(x) !== referenceF16(x))
          expect([h, x, f32ToF16Bits(x)]).toEqual([h, x, referenceF16(x)]);
      }
    }
  });
});

describe("f16 → f32", () => {
  it("is exact, and every non-NaN half survives a round trip", () => {
    expect(f16BitsToF32(0x3c00)).toBe(1);
    expect(f16BitsToF32(0x0001)).toBe(2 ** -24);
    expect(f16BitsToF32(0x03ff)).toBe(1023 * 2 ** -24);
    expect(f16BitsToF32(0x0400)).toBe(2 ** -14);
    expect(f16BitsToF32(0x7bff)).toBe(65504);
    expect(f16BitsToF32(0x7c00)).toBe(Infinity);
    expect(f16BitsToF32(0xfc00)).toBe(-Infinity);
    expect(Object.is(f16BitsToF32(0x8000), -0)).toBe(true);
    expect(f16BitsToF32(0x7c01)).toBeNaN();
    for (let h = 0; h < 65536; h++) {
      const isNaN = (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
      if (isNaN) continue;
      if (f32ToF16Bits(f16BitsToF32(h)) !== h) expect(f32ToF16Bits(f16BitsToF32(h))).toBe(h);
    }
    expect(roundToF16(0.1)).toBe(0.0999755859375);
  });
});

/** The f32 next to `x` (an f32) towards ±Infinity. */
function nextF32(x: number, direction: 1 | -1): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer);
  if (x === 0) return direction * 2 ** -149;
  u[0] += x > 0 === direction > 0 ? 1 : -1;
  return f[0];
}

/**
 * IEEE 754 binary16 ("half", f16) conversions for the `.kvc` f16 dtype: f32 → f16 rounds to nearest,
 * ties to even, exactly as a hardware `vcvtps2ph` with the default rounding mode does; f16 → f32 is
 * exact. Infinities stay infinities, NaN stays NaN (quiet, the top payload bits kept), values past the
 * largest half (65504) round to ±Infinity, and tiny values round to subnormals or to a signed zero.
 */

const SCRATCH_F32 = new Float32Array(1);
const SCRATCH_U32 = new Uint32Array(SCRATCH_F32.buffer);

/**
 * The f16 bit pattern nearest (ties to even) to the f32 with bit pattern `bits`. The hot path of the
 * f16 encoder: it reads the f32 bits through a `Uint32Array` view of the data, so no float round trip.
 *
 * @example
 * ```ts
 * f32BitsToF16Bits(0x3f800000); // 0x3c00 (1.0)
 * f32BitsToF16Bits(0x7f800000); // 0x7c00 (+Infinity)
 * ```
 */
export function f32BitsToF16Bits(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  const mantissa = bits & 0x7fffff;
  if (exponent === 0xff) {
    // Infinity, or NaN made quiet (bit 9) with its top payload bits.
    return mantissa === 0 ? sign | 0x7c00 : sign | 0x7e00 | (mantissa >>> 13);
  }
  const e = exponent - 112; // the half's biased exponent (127 − 15 = 112)
  if (e >= 0x1f) return sign | 0x7c00; // ≥ 2^16: past the largest half even before rounding
  if (e >= 1) {
    // Normal half: drop 13 mantissa bits, round to nearest even. A carry out of the mantissa bumps the
    // exponent, and out of exponent 30 lands exactly on 0x7c00 (Infinity), as it should.
    let half = (e << 10) | (mantissa >>> 13);
    const rest = mantissa & 0x1fff;
    if (rest > 0x1000 || (rest === 0x1000 && (half & 1) === 1)) half++;
    return sign | half;
  }
  // Subnormal half (or zero): the value in units of 2^-24 is significand / 2^shift.
  const shift = 14 - e; // ≥ 14
  if (shift > 24) return sign; // below 2^-25 (half the smallest subnormal): rounds to zero
  const significand = mantissa | 0x800000;
  let half = significand >>> shift;
  const rest = significand & ((1 << shift) - 1);
  const halfway = 1 << (shift - 1);
  if (rest > halfway || (rest === halfway && (half & 1) === 1)) half++; // may reach 0x400: the smallest normal
  return sign | half;
}

/**
 * The f16 bit pattern of `value`, rounded to nearest even. `value` is taken as an f32 (a JavaScript
 * number is first rounded to f32, as storing it in a `Float32Array` does), matching what the encoder
 * sees in the cache's `Float32Array`s.
 *
 * @example
 * ```ts
 * f32ToF16Bits(1);        // 0x3c00
 * f32ToF16Bits(65520);    // 0x7c00: the tie between 65504 and 2^16 goes to even, i.e. Infinity
 * f32ToF16Bits(2 ** -25); // 0x0000: the tie between 0 and the smallest subnormal goes to even
 * ```
 */
export function f32ToF16Bits(value: number): number {
  SCRATCH_F32[0] = value;
  return f32BitsToF16Bits(SCRATCH_U32[0]);
}

// Every half's f32 value, built on first use (256 KiB): decoding is one lookup per element.
let halfTable: Float32Array | null = null;

/** The f32 value of every f16 bit pattern, indexed by the pattern. Built once, then shared. */
export function f16Table(): Float32Array {
  if (halfTable !== null) return halfTable;
  const bits = new Uint32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16;
    const exponent = (h >>> 10) & 0x1f;
    const mantissa = h & 0x3ff;
    if (exponent === 0x1f) bits[h] = sign | 0x7f800000 | (mantissa << 13);
    else if (exponent !== 0) bits[h] = sign | ((exponent + 112) << 23) | (mantissa << 13);
    else if (mantissa === 0) bits[h] = sign;
    else {
      // Subnormal half m·2^-24: normalise into an f32 (every half subnormal is an f32 normal).
      let m = mantissa;
      let exp = 113; // f32 biased exponent of 2^-14
      while ((m & 0x400) === 0) {
        m <<= 1;
        exp--;
      }
      bits[h] = sign | (exp << 23) | ((m & 0x3ff) << 13);
    }
  }
  halfTable = new Float32Array(bits.buffer);
  return halfTable;
}

/**
 * The exact f32 value of the f16 bit pattern `bits` (0 … 0xffff).
 *
 * @example
 * ```ts
 * f16BitsToF32(0x3c00); // 1
 * f16BitsToF32(0x0001); // 5.960464477539063e-8 (2^-24, the smallest subnormal)
 * f16BitsToF32(0xfc00); // -Infinity
 * ```
 */
export function f16BitsToF32(bits: number): number {
  return f16Table()[bits & 0xffff];
}

/**
 * `value` after an f16 round trip: what the `.kvc` f16 dtype stores for it.
 *
 * @example
 * ```ts
 * roundToF16(0.1);    // 0.0999755859375
 * roundToF16(1e5);    // Infinity
 * ```
 */
export function roundToF16(value: number): number {
  return f16BitsToF32(f32ToF16Bits(value));
}

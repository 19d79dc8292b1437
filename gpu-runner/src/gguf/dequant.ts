/**
 * Dequantisation of ggml blocks to f32, bit for bit as ggml's reference `dequantize_row_*`:
 * - Q4_0: x = (nibble − 8) · d          (low nibbles are values 0..15, high nibbles 16..31)
 * - Q4_1: x = nibble · d + m
 * - Q8_0: x = q · d
 * f16 and bf16 widen exactly.
 */
import { EpicacheError } from "@epicache/shared";
import { GGML_TYPES, type GgmlTypeName } from "./ggml-types";

const F16_TABLE = (() => {
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) t[h] = f16ToF32Slow(h);
  return t;
})();

function f16ToF32Slow(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** IEEE half → float (exact). */
export function f16ToF32(h: number): number {
  return F16_TABLE[h & 0xffff];
}

/** Dequantises `count` values of `type` from `bytes` into a new Float32Array. */
export function dequantize(type: GgmlTypeName, bytes: Uint8Array, count: number): Float32Array {
  const t = GGML_TYPES[type];
  if (!t) throw new EpicacheError("gguf_unsupported", `cannot dequantise ggml type ${type}`);
  const need = (count / t.blockSize) * t.blockBytes;
  if (count % t.blockSize !== 0 || bytes.byteLength < need) {
    throw new EpicacheError(
      "gguf_truncated",
      `${type} data holds ${bytes.byteLength} bytes, ${need} needed for ${count} values`,
    );
  }
  const out = new Float32Array(count);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (type) {
    case "F32":
      for (let i = 0; i < count; i++) out[i] = dv.getFloat32(i * 4, true);
      break;
    case "F16":
      for (let i = 0; i < count; i++) out[i] = F16_TABLE[dv.getUint16(i * 2, true)];
      break;
    case "BF16": {
      const u = new Uint32Array(out.buffer);
      for (let i = 0; i < count; i++) u[i] = dv.getUint16(i * 2, true) << 16;
      break;
    }
    case "Q4_0":
      for (let b = 0, o = 0; o < count; b += 18, o += 32) {
        const d = F16_TABLE[dv.getUint16(b, true)];
        for (let j = 0; j < 16; j++) {
          const q = bytes[b + 2 + j];
          out[o + j] = ((q & 0x0f) - 8) * d;
          out[o + j + 16] = ((q >> 4) - 8) * d;
        }
      }
      break;
    case "Q4_1":
      for (let b = 0, o = 0; o < count; b += 20, o += 32) {
        const d = F16_TABLE[dv.getUint16(b, true)];
        const m = F16_TABLE[dv.getUint16(b + 2, true)];
        for (let j = 0; j < 16; j++) {
          const q = bytes[b + 4 + j];
          out[o + j] = Math.fround((q & 0x0f) * d) + m;
          out[o + j + 16] = Math.fround((q >> 4) * d) + m;
        }
      }
      break;
    case "Q8_0":
      for (let b = 0, o = 0; o < count; b += 34, o += 32) {
        const d = F16_TABLE[dv.getUint16(b, true)];
        for (let j = 0; j < 32; j++) out[o + j] = ((bytes[b + 2 + j] << 24) >> 24) * d;
      }
      break;
  }
  return out;
}

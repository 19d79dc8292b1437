/**
 * Writes safetensors files, for tests: an 8-byte little-endian header size, the JSON header padded
 * with spaces to a multiple of 8 (as huggingface/safetensors does), then the tensors back to back in
 * the given order. F32, F16 and BF16 values, rounded to nearest even as PyTorch's casts do.
 */
import { f32ToF16 } from "./gguf-writer";

export type WritableDtype = "F32" | "F16" | "BF16";

export interface SafetensorsEntry {
  name: string;
  dtype: WritableDtype;
  /** PyTorch order: the last dim is the row length. */
  shape: number[];
  data: Float32Array;
}

/** IEEE float → bfloat16 bits, round to nearest even (NaN stays a quiet NaN). */
export function f32ToBf16(v: number): number {
  const x = new Uint32Array(Float32Array.of(v).buffer)[0];
  if ((x & 0x7fffffff) > 0x7f800000) return ((x >>> 16) | 0x40) & 0xffff;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

/** The little-endian bytes of `data` stored as `dtype`. */
export function encodeValues(dtype: WritableDtype, data: Float32Array): Uint8Array {
  const width = dtype === "F32" ? 4 : 2;
  const out = new Uint8Array(data.length * width);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < data.length; i++) {
    if (dtype === "F32") dv.setFloat32(i * 4, data[i], true);
    else dv.setUint16(i * 2, dtype === "F16" ? f32ToF16(data[i]) : f32ToBf16(data[i]), true);
  }
  return out;
}

/** The values `data` holds once stored as `dtype` (what a reader must give back). */
export function roundTo(dtype: WritableDtype, data: Float32Array): Float32Array {
  if (dtype === "F32") return Float32Array.from(data);
  const bits = encodeValues(dtype, data);
  const dv = new DataView(bits.buffer);
  const out = new Float32Array(data.length);
  for (let i = 0; i < data.length; i++) {
    const h = dv.getUint16(i * 2, true);
    if (dtype === "BF16") {
      out[i] = new Float32Array(Uint32Array.of(h << 16).buffer)[0];
    } else {
      const e = (h >> 10) & 0x1f,
        m = h & 0x3ff,
        s = h & 0x8000 ? -1 : 1;
      out[i] =
        e === 0
          ? s * m * 2 ** -24
          : e === 31
            ? m
              ? NaN
              : s * Infinity
            : s * (1 + m / 1024) * 2 ** (e - 15);
    }
  }
  return out;
}

/** The bytes of a safetensors file holding `tensors` (and `__metadata__` when given). */
export function writeSafetensors(
  tensors: readonly SafetensorsEntry[],
  metadata?: Record<string, string>,
): Uint8Array {
  const header: Record<string, unknown> = metadata ? { __metadata__: metadata } : {};
  const blobs: Uint8Array[] = [];
  let offset = 0;
  for (const t of tensors) {
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length)
      throw new Error(
        `tensor ${t.name}: shape [${t.shape}] holds ${count} values, data has ${t.data.length}`,
      );
    const blob = encodeValues(t.dtype, t.data);
    header[t.name] = {
      dtype: t.dtype,
      shape: t.shape,
      data_offsets: [offset, offset + blob.byteLength],
    };
    blobs.push(blob);
    offset += blob.byteLength;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (new TextEncoder().encode(json).byteLength % 8)) % 8);
  const head = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + head.byteLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(head.byteLength), true);
  out.set(head, 8);
  let at = 8 + head.byteLength;
  for (const b of blobs) {
    out.set(b, at);
    at += b.byteLength;
  }
  return out;
}

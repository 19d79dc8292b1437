/**
 * Writes GGUF v3 files, for tests: typed metadata and F32/F16/Q8_0/Q4_0/Q4_1 tensors, quantised as
 * ggml's reference quantisers do.
 */
import { GGML_TYPES, type GgmlTypeName } from "../gguf";

export type MetaEntry =
  | [string, "u32" | "i32" | "f32" | "u8" | "u64", number]
  | [string, "bool", boolean]
  | [string, "string", string]
  | [string, "strings", string[]]
  | [string, "i32s", number[]];

export interface TensorEntry {
  name: string;
  /** ggml order: dims[0] is the row length. */
  dims: number[];
  type: GgmlTypeName;
  data: Float32Array;
}

class Bytes {
  private chunks: Uint8Array[] = [];
  length = 0;
  push(b: Uint8Array) {
    this.chunks.push(b);
    this.length += b.byteLength;
  }
  u32(v: number) {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v, true);
    this.push(b);
  }
  i32(v: number) {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setInt32(0, v, true);
    this.push(b);
  }
  u64(v: number | bigint) {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt(v), true);
    this.push(b);
  }
  f32(v: number) {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    this.push(b);
  }
  str(s: string) {
    const e = new TextEncoder().encode(s);
    this.u64(e.byteLength);
    this.push(e);
  }
  pad(align: number) {
    const n = (align - (this.length % align)) % align;
    if (n) this.push(new Uint8Array(n));
  }
  concat(): Uint8Array {
    const out = new Uint8Array(this.length);
    let o = 0;
    for (const c of this.chunks) {
      out.set(c, o);
      o += c.byteLength;
    }
    return out;
  }
}

/** IEEE float → half, round to nearest even. */
export function f32ToF16(v: number): number {
  const f = new Float32Array([v]);
  const x = new Uint32Array(f.buffer)[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && h & 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++;
  return sign | h;
}

function f16Value(h: number): number {
  const e = (h >> 10) & 0x1f,
    m = h & 0x3ff,
    s = h & 0x8000 ? -1 : 1;
  if (e === 0) return s * m * 2 ** -24;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** ggml's reference quantisers. */
export function quantize(type: GgmlTypeName, x: Float32Array): Uint8Array {
  const t = GGML_TYPES[type];
  const out = new Uint8Array((x.length / t.blockSize) * t.blockBytes);
  const dv = new DataView(out.buffer);
  switch (type) {
    case "F32":
      for (let i = 0; i < x.length; i++) dv.setFloat32(i * 4, x[i], true);
      break;
    case "F16":
      for (let i = 0; i < x.length; i++) dv.setUint16(i * 2, f32ToF16(x[i]), true);
      break;
    case "BF16": {
      const u = new Uint32Array(Float32Array.from(x).buffer);
      for (let i = 0; i < x.length; i++) dv.setUint16(i * 2, u[i] >>> 16, true);
      break;
    }
    case "Q8_0":
      for (let b = 0; b < x.length / 32; b++) {
        let amax = 0;
        for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b * 32 + j]));
        const d = amax / 127,
          id = d ? 1 / d : 0;
        dv.setUint16(b * 34, f32ToF16(d), true);
        for (let j = 0; j < 32; j++) dv.setInt8(b * 34 + 2 + j, Math.round(x[b * 32 + j] * id));
      }
      break;
    case "Q4_0":
      for (let b = 0; b < x.length / 32; b++) {
        let amax = 0,
          max = 0;
        for (let j = 0; j < 32; j++) {
          const v = x[b * 32 + j];
          if (Math.abs(v) > amax) {
            amax = Math.abs(v);
            max = v;
          }
        }
        const d = max / -8,
          id = d ? 1 / d : 0;
        dv.setUint16(b * 18, f32ToF16(d), true);
        for (let j = 0; j < 16; j++) {
          const q0 = Math.min(15, Math.trunc(x[b * 32 + j] * id + 8.5));
          const q1 = Math.min(15, Math.trunc(x[b * 32 + j + 16] * id + 8.5));
          out[b * 18 + 2 + j] = q0 | (q1 << 4);
        }
      }
      break;
    case "Q4_1":
      for (let b = 0; b < x.length / 32; b++) {
        let min = Infinity,
          max = -Infinity;
        for (let j = 0; j < 32; j++) {
          min = Math.min(min, x[b * 32 + j]);
          max = Math.max(max, x[b * 32 + j]);
        }
        const d = (max - min) / 15,
          id = d ? 1 / d : 0;
        dv.setUint16(b * 20, f32ToF16(d), true);
        dv.setUint16(b * 20 + 2, f32ToF16(min), true);
        for (let j = 0; j < 16; j++) {
          const q0 = Math.min(15, Math.trunc((x[b * 32 + j] - min) * id + 0.5));
          const q1 = Math.min(15, Math.trunc((x[b * 32 + j + 16] - min) * id + 0.5));
          out[b * 20 + 4 + j] = q0 | (q1 << 4);
        }
      }
      break;
  }
  return out;
}

export { f16Value };

const TYPE_IDS = { u8: 0, u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9, u64: 10 } as const;

export function writeGguf(meta: MetaEntry[], tensors: TensorEntry[], alignment = 32): Uint8Array {
  const head = new Bytes();
  head.u32(0x46554747);
  head.u32(3);
  head.u64(tensors.length);
  head.u64(meta.length + (alignment !== 32 ? 1 : 0));
  const all: MetaEntry[] =
    alignment !== 32 ? [...meta, ["general.alignment", "u32", alignment]] : meta;
  for (const [key, type, value] of all) {
    head.str(key);
    switch (type) {
      case "u8":
        head.u32(TYPE_IDS.u8);
        head.push(new Uint8Array([value as number]));
        break;
      case "u32":
        head.u32(TYPE_IDS.u32);
        head.u32(value as number);
        break;
      case "i32":
        head.u32(TYPE_IDS.i32);
        head.i32(value as number);
        break;
      case "f32":
        head.u32(TYPE_IDS.f32);
        head.f32(value as number);
        break;
      case "u64":
        head.u32(TYPE_IDS.u64);
        head.u64(value as number);
        break;
      case "bool":
        head.u32(TYPE_IDS.bool);
        head.push(new Uint8Array([value ? 1 : 0]));
        break;
      case "string":
        head.u32(TYPE_IDS.string);
        head.str(value as string);
        break;
      case "strings":
        head.u32(TYPE_IDS.array);
        head.u32(TYPE_IDS.string);
        head.u64((value as string[]).length);
        for (const s of value as string[]) head.str(s);
        break;
      case "i32s":
        head.u32(TYPE_IDS.array);
        head.u32(TYPE_IDS.i32);
        head.u64((value as number[]).length);
        for (const v of value as number[]) head.i32(v);
        break;
    }
  }
  const blobs = tensors.map((t) => quantize(t.type, t.data));
  let offset = 0;
  const offsets: number[] = [];
  for (const b of blobs) {
    offsets.push(offset);
    offset += Math.ceil(b.byteLength / alignment) * alignment;
  }
  tensors.forEach((t, i) => {
    head.str(t.name);
    head.u32(t.dims.length);
    for (const d of t.dims) head.u64(d);
    head.u32(GGML_TYPES[t.type].id);
    head.u64(offsets[i]);
  });
  head.pad(alignment);
  blobs.forEach((b) => {
    head.push(b);
    head.pad(alignment);
  });
  return head.concat();
}

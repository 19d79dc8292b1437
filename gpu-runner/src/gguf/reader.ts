/**
 * GGUF reader (versions 2 and 3, little-endian). Layout, as in ggml's gguf.cpp:
 *
 * | field            | type                                   |
 * |------------------|----------------------------------------|
 * | magic            | "GGUF" (4 bytes)                       |
 * | version          | u32 (2 or 3)                           |
 * | tensor count     | u64                                    |
 * | metadata count   | u64                                    |
 * | metadata × n     | key: string, value type: u32, value    |
 * | tensor info × n  | name: string, n_dims: u32, dims: u64[n_dims], ggml type: u32, offset: u64 |
 * | padding          | to `general.alignment` (default 32)    |
 * | tensor data      | each tensor at data start + its offset |
 *
 * A string is a u64 byte length then UTF-8 bytes; an array is an element type u32, a u64 count, then
 * the elements. Every length and count is checked against the bytes left in the file before it is
 * used, so a corrupt file gives a `gguf_invalid`/`gguf_truncated` error instead of a huge allocation,
 * a crash or a hang.
 */
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { EpicacheError } from "@epicache/shared";
import { describeGgmlType, GGML_TYPES, ggmlTypeName, type GgmlTypeName } from "./ggml-types";

export type GgufValue = number | bigint | boolean | string | GgufValue[];

export interface GgufTensorInfo {
  name: string;
  /** ggml order: dims[0] is the fastest-varying (row length). */
  dims: number[];
  type: GgmlTypeName;
  /** Absolute byte offset in the file. */
  offset: number;
  byteLength: number;
  elementCount: number;
}

export interface GgufFile {
  version: number;
  metadata: Map<string, GgufValue>;
  tensors: Map<string, GgufTensorInfo>;
  alignment: number;
  dataOffset: number;
  fileSize: number;
  /** Reads raw bytes of a tensor. */
  readTensorBytes(info: GgufTensorInfo): Uint8Array;
  close(): void;
}

/** Random access to the bytes of a file or a buffer. */
export interface ByteSource {
  size: number;
  read(offset: number, length: number): Uint8Array;
  close(): void;
}

export function bufferSource(bytes: Uint8Array): ByteSource {
  return {
    size: bytes.byteLength,
    read: (offset, length) => bytes.subarray(offset, offset + length),
    close: () => {},
  };
}

/** Random access to a file on disk. `kind` names it in the error when it cannot be opened. */
export function fileSource(path: string, kind = "GGUF file"): ByteSource {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (e) {
    throw new EpicacheError(
      "model_not_found",
      `cannot open ${kind} ${path}: ${(e as Error).message}`,
    );
  }
  const size = fstatSync(fd).size;
  return {
    size,
    read(offset, length) {
      const out = new Uint8Array(length);
      let done = 0;
      while (done < length) {
        const n = readSync(fd, out, done, length - done, offset + done);
        if (n === 0) break;
        done += n;
      }
      return done === length ? out : out.subarray(0, done);
    },
    close: () => closeSync(fd),
  };
}

const MAGIC = 0x46554747; // "GGUF" little-endian
const MAX_COUNT = 1 << 24;
const VALUE_TYPES = {
  UINT8: 0,
  INT8: 1,
  UINT16: 2,
  INT16: 3,
  UINT32: 4,
  INT32: 5,
  FLOAT32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  UINT64: 10,
  INT64: 11,
  FLOAT64: 12,
} as const;
const SCALAR_BYTES: Record<number, number> = {
  0: 1,
  1: 1,
  2: 2,
  3: 2,
  4: 4,
  5: 4,
  6: 4,
  7: 1,
  10: 8,
  11: 8,
  12: 8,
};

/** Reads the header region of a source through a growing window. */
class Cursor {
  private buf: Uint8Array = new Uint8Array(0);
  private view: DataView = new DataView(this.buf.buffer);
  private bufStart = 0;
  pos = 0;
  constructor(
    private readonly src: ByteSource,
    private readonly what: string,
  ) {}

  private ensure(n: number, context: string): void {
    if (this.pos + n > this.src.size) {
      throw new EpicacheError(
        "gguf_truncated",
        `${this.what}: file ends at byte ${this.src.size} while reading ${context} (needs ${n} bytes at ${this.pos})`,
      );
    }
    const end = this.pos + n;
    if (this.pos >= this.bufStart && end <= this.bufStart + this.buf.byteLength) return;
    const want = Math.min(Math.max(n, 1 << 20), this.src.size - this.pos);
    const chunk = this.src.read(this.pos, want);
    this.buf = chunk;
    this.view = new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    this.bufStart = this.pos;
  }
  remaining(): number {
    return this.src.size - this.pos;
  }
  private at(n: number, context: string): number {
    this.ensure(n, context);
    const o = this.pos - this.bufStart;
    this.pos += n;
    return o;
  }
  // The offset is taken before `this.view` is read: `at` may move the window and replace the view.
  u8(c: string): number {
    const o = this.at(1, c);
    return this.view.getUint8(o);
  }
  i8(c: string): number {
    const o = this.at(1, c);
    return this.view.getInt8(o);
  }
  u16(c: string): number {
    const o = this.at(2, c);
    return this.view.getUint16(o, true);
  }
  i16(c: string): number {
    const o = this.at(2, c);
    return this.view.getInt16(o, true);
  }
  u32(c: string): number {
    const o = this.at(4, c);
    return this.view.getUint32(o, true);
  }
  i32(c: string): number {
    const o = this.at(4, c);
    return this.view.getInt32(o, true);
  }
  f32(c: string): number {
    const o = this.at(4, c);
    return this.view.getFloat32(o, true);
  }
  f64(c: string): number {
    const o = this.at(8, c);
    return this.view.getFloat64(o, true);
  }
  u64(c: string): bigint {
    const o = this.at(8, c);
    return this.view.getBigUint64(o, true);
  }
  i64(c: string): bigint {
    const o = this.at(8, c);
    return this.view.getBigInt64(o, true);
  }
  /** A u64 that must fit a JS number and stay below `limit`. */
  count(c: string, limit: number): number {
    const v = this.u64(c);
    if (v > BigInt(limit)) {
      throw new EpicacheError(
        "gguf_invalid",
        `${this.what}: ${c} is ${v}, more than the ${limit} the file can hold`,
      );
    }
    return Number(v);
  }
  string(c: string): string {
    const len = this.count(`${c} length`, this.remaining() - 8);
    const o = this.at(len, c);
    return new TextDecoder("utf-8", { fatal: false }).decode(this.buf.subarray(o, o + len));
  }
}

function readValue(cur: Cursor, type: number, key: string, depth = 0): GgufValue {
  const c = `value of ${key}`;
  switch (type) {
    case VALUE_TYPES.UINT8:
      return cur.u8(c);
    case VALUE_TYPES.INT8:
      return cur.i8(c);
    case VALUE_TYPES.UINT16:
      return cur.u16(c);
    case VALUE_TYPES.INT16:
      return cur.i16(c);
    case VALUE_TYPES.UINT32:
      return cur.u32(c);
    case VALUE_TYPES.INT32:
      return cur.i32(c);
    case VALUE_TYPES.FLOAT32:
      return cur.f32(c);
    case VALUE_TYPES.FLOAT64:
      return cur.f64(c);
    case VALUE_TYPES.UINT64:
      return cur.u64(c);
    case VALUE_TYPES.INT64:
      return cur.i64(c);
    case VALUE_TYPES.BOOL: {
      const b = cur.u8(c);
      if (b > 1) throw new EpicacheError("gguf_invalid", `${key}: boolean byte is ${b}`);
      return b === 1;
    }
    case VALUE_TYPES.STRING:
      return cur.string(c);
    case VALUE_TYPES.ARRAY: {
      if (depth > 2) throw new EpicacheError("gguf_invalid", `${key}: arrays nested too deeply`);
      const elemType = cur.u32(`${key} array type`);
      const minBytes = elemType === VALUE_TYPES.STRING ? 8 : (SCALAR_BYTES[elemType] ?? 12);
      const n = cur.count(`${key} array length`, Math.floor(cur.remaining() / minBytes));
      const out: GgufValue[] = new Array(n);
      for (let i = 0; i < n; i++) out[i] = readValue(cur, elemType, key, depth + 1);
      return out;
    }
    default:
      throw new EpicacheError("gguf_invalid", `${key}: unknown metadata value type ${type}`);
  }
}

/**
 * Parses a GGUF file's header and tensor table. Tensor data is read on demand.
 *
 * @param what a name for error messages (usually the path)
 */
export function parseGguf(src: ByteSource, what = "GGUF"): GgufFile {
  try {
    const cur = new Cursor(src, what);
    if (src.size < 4 || cur.u32("magic") !== MAGIC) {
      throw new EpicacheError("gguf_invalid", `${what}: not a GGUF file (bad magic)`);
    }
    const version = cur.u32("version");
    if (version !== 2 && version !== 3) {
      throw new EpicacheError(
        "gguf_unsupported",
        `${what}: GGUF version ${version} is not supported (2 and 3 are)`,
      );
    }
    const tensorCount = cur.count("tensor count", MAX_COUNT);
    const kvCount = cur.count("metadata count", MAX_COUNT);

    const metadata = new Map<string, GgufValue>();
    for (let i = 0; i < kvCount; i++) {
      const key = cur.string(`metadata key ${i}`);
      const type = cur.u32(`type of ${key}`);
      metadata.set(key, readValue(cur, type, key));
    }

    const rawAlign = metadata.get("general.alignment") ?? 32;
    const alignment = Number(rawAlign);
    if (!Number.isInteger(alignment) || alignment <= 0 || (alignment & (alignment - 1)) !== 0) {
      throw new EpicacheError(
        "gguf_invalid",
        `${what}: general.alignment ${String(rawAlign)} is not a power of two`,
      );
    }

    const infos: Array<{ name: string; dims: number[]; typeId: number; rel: bigint }> = [];
    for (let i = 0; i < tensorCount; i++) {
      const name = cur.string(`tensor ${i} name`);
      const nDims = cur.u32(`dims of ${name}`);
      if (nDims < 1 || nDims > 4)
        throw new EpicacheError("gguf_invalid", `${what}: tensor ${name} has ${nDims} dims`);
      const dims: number[] = [];
      for (let d = 0; d < nDims; d++) dims.push(cur.count(`dim ${d} of ${name}`, 2 ** 40));
      const typeId = cur.u32(`type of ${name}`);
      const rel = cur.u64(`offset of ${name}`);
      infos.push({ name, dims, typeId, rel });
    }
    const dataOffset = Math.ceil(cur.pos / alignment) * alignment;

    const tensors = new Map<string, GgufTensorInfo>();
    for (const { name, dims, typeId, rel } of infos) {
      if (tensors.has(name))
        throw new EpicacheError("gguf_invalid", `${what}: tensor ${name} appears twice`);
      const type = ggmlTypeName(typeId);
      const elementCount = dims.reduce((a, b) => a * b, 1);
      const t = type ? GGML_TYPES[type] : undefined;
      // An unsupported type is only an error if someone reads that tensor; record its size as unknown.
      const byteLength = t ? (elementCount / t.blockSize) * t.blockBytes : 0;
      if (t && dims[0] % t.blockSize !== 0) {
        throw new EpicacheError(
          "gguf_invalid",
          `${what}: tensor ${name} row of ${dims[0]} is not a multiple of ${t.blockSize}`,
        );
      }
      if (rel % BigInt(alignment) !== 0n) {
        throw new EpicacheError(
          "gguf_invalid",
          `${what}: tensor ${name} offset ${rel} is not aligned to ${alignment}`,
        );
      }
      const offset = dataOffset + Number(rel);
      if (!Number.isSafeInteger(offset) || offset + byteLength > src.size) {
        throw new EpicacheError(
          "gguf_truncated",
          `${what}: tensor ${name} (${byteLength} bytes at ${offset}) lies beyond the end of the file (${src.size} bytes)`,
        );
      }
      tensors.set(name, {
        name,
        dims,
        elementCount,
        offset,
        byteLength,
        type: type ?? (describeGgmlType(typeId) as GgmlTypeName),
      });
    }

    return {
      version,
      metadata,
      tensors,
      alignment,
      dataOffset,
      fileSize: src.size,
      readTensorBytes(info) {
        if (!ggmlTypeName(GGML_TYPES[info.type as GgmlTypeName]?.id ?? -1)) {
          throw new EpicacheError(
            "gguf_unsupported",
            `${what}: tensor ${info.name} has type ${info.type}, which is not supported (F32, F16, BF16, Q8_0, Q4_0, Q4_1 are)`,
          );
        }
        return src.read(info.offset, info.byteLength);
      },
      close: () => src.close(),
    };
  } catch (e) {
    src.close();
    throw e;
  }
}

/** Opens and parses a GGUF file from disk. Call `close()` when done. */
export function openGguf(path: string): GgufFile {
  return parseGguf(fileSource(path), path);
}

/** Typed metadata access with a clear error when a key is missing or has the wrong type. */
export function meta<T extends "number" | "string" | "boolean" | "array">(
  file: Pick<GgufFile, "metadata">,
  key: string,
  kind: T,
): T extends "number"
  ? number
  : T extends "string"
    ? string
    : T extends "boolean"
      ? boolean
      : GgufValue[];
export function meta(file: Pick<GgufFile, "metadata">, key: string, kind: string): unknown {
  const v = file.metadata.get(key);
  if (v === undefined) throw new EpicacheError("gguf_invalid", `GGUF metadata lacks ${key}`);
  if (kind === "number" && (typeof v === "number" || typeof v === "bigint")) return Number(v);
  if (kind === "array" && Array.isArray(v)) return v;
  if (typeof v === kind) return v;
  throw new EpicacheError("gguf_invalid", `GGUF metadata ${key} is not a ${kind}`);
}

export function metaOptional(file: Pick<GgufFile, "metadata">, key: string): GgufValue | undefined {
  return file.metadata.get(key);
}

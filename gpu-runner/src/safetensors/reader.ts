/**
 * safetensors reader (the format of Hugging Face checkpoints). Layout, as in huggingface/safetensors:
 *
 * | field       | type                                                                  |
 * |-------------|-----------------------------------------------------------------------|
 * | header size | u64 little-endian, N                                                  |
 * | header      | N bytes of UTF-8 JSON, starting with `{`, maybe padded with spaces    |
 * | data        | the tensors' bytes; a tensor lies at 8 + N + its `data_offsets[0]`    |
 *
 * The header maps each tensor name to `{dtype, shape, data_offsets: [begin, end]}` (offsets relative
 * to the start of the data, row-major, little-endian values) and may hold `"__metadata__"`, a map of
 * strings. Every tensor is checked against the file before anything is read, as the reference reader
 * does: a known dtype, a shape whose size matches its byte range, ranges that tile the data exactly
 * (no gap, no overlap, nothing past the end). So a truncated or corrupt file gives a `model_invalid`
 * error at open time, never a huge allocation, a crash or a hang.
 */
import { EpicacheError } from "@epicache/shared";
import { fileSource, f16ToF32, type ByteSource } from "../gguf";

/** Bytes per value of every dtype the format defines (sub-byte float formats are not supported). */
export const SAFETENSORS_DTYPES = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  I64: 8,
  U64: 8,
  F64: 8,
} as const;
export type SafetensorsDtype = keyof typeof SAFETENSORS_DTYPES;

export interface SafetensorsTensorInfo {
  name: string;
  dtype: SafetensorsDtype;
  /** Row-major, PyTorch order: the last dim is the row length. */
  shape: number[];
  elementCount: number;
  /** Absolute byte offset in the file. */
  offset: number;
  byteLength: number;
}

export interface SafetensorsFile {
  /** The header's `__metadata__` (empty when absent). */
  metadata: Record<string, string>;
  tensors: Map<string, SafetensorsTensorInfo>;
  fileSize: number;
  /** The raw little-endian bytes of a tensor. */
  readTensorBytes(info: SafetensorsTensorInfo): Uint8Array;
  /** A tensor's values widened to f32 (F32, F16, BF16 and F64 tensors). */
  readTensor(info: SafetensorsTensorInfo): Float32Array;
  close(): void;
}

/** The reference implementation's limit on the header size. */
export const MAX_HEADER_BYTES = 100_000_000;

const invalid = (message: string) => new EpicacheError("model_invalid", message);

function isDtype(s: unknown): s is SafetensorsDtype {
  return typeof s === "string" && Object.hasOwn(SAFETENSORS_DTYPES, s);
}

/** A non-negative integer that a double holds exactly. */
function isCount(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

/** Checks one header entry and turns it into a tensor info (offsets still relative to the data). */
function tensorEntry(what: string, name: string, raw: unknown): SafetensorsTensorInfo {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw))
    throw invalid(`${what}: tensor ${name} is not an object`);
  const {
    dtype,
    shape,
    data_offsets: offsets,
  } = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
  if (typeof dtype !== "string") throw invalid(`${what}: tensor ${name} has no dtype`);
  if (!isDtype(dtype))
    throw new EpicacheError(
      "model_unsupported",
      `${what}: tensor ${name} has dtype ${JSON.stringify(dtype)}, which this reader does not know`,
    );
  if (!Array.isArray(shape) || !shape.every(isCount))
    throw invalid(`${what}: tensor ${name} has a bad shape ${JSON.stringify(shape)}`);
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount)) {
    throw invalid(`${what}: tensor ${name} has bad data_offsets ${JSON.stringify(offsets)}`);
  }
  const [begin, end] = offsets as [number, number];
  let elementCount = 1;
  for (const d of shape as number[]) {
    elementCount *= d;
    if (!Number.isSafeInteger(elementCount))
      throw invalid(`${what}: tensor ${name} shape ${JSON.stringify(shape)} is too large`);
  }
  const byteLength = elementCount * SAFETENSORS_DTYPES[dtype];
  if (end < begin || end - begin !== byteLength) {
    throw invalid(
      `${what}: tensor ${name} (${dtype} ${JSON.stringify(shape)}, ${byteLength} bytes) has data_offsets [${begin}, ${end}]`,
    );
  }
  return { name, dtype, shape: shape as number[], elementCount, offset: begin, byteLength };
}

/**
 * Parses a safetensors header and checks every tensor against the file. Tensor data is read on demand.
 *
 * @param what a name for error messages (usually the path)
 */
export function parseSafetensors(src: ByteSource, what = "safetensors"): SafetensorsFile {
  try {
    if (src.size < 8)
      throw invalid(`${what}: ${src.size} bytes is too short for a safetensors file`);
    const headerSize = new DataView(src.read(0, 8).slice().buffer).getBigUint64(0, true);
    if (headerSize > BigInt(src.size - 8)) {
      throw invalid(
        `${what}: the header declares ${headerSize} bytes but the file has ${src.size - 8} after the size field (truncated?)`,
      );
    }
    const N = Number(headerSize);
    if (N > MAX_HEADER_BYTES)
      throw invalid(`${what}: the header of ${N} bytes exceeds the ${MAX_HEADER_BYTES}-byte limit`);
    const headerBytes = src.read(8, N);
    if (headerBytes.byteLength !== N) throw invalid(`${what}: the file ends inside its header`);
    let text: string;
    try {
      text = new TextDecoder("utf-8", { fatal: true }).decode(headerBytes);
    } catch {
      throw invalid(`${what}: the header is not valid UTF-8`);
    }
    if (!text.startsWith("{")) throw invalid(`${what}: the header is not a JSON object`);
    let header: unknown;
    try {
      header = JSON.parse(text);
    } catch (e) {
      throw invalid(`${what}: the header is not valid JSON (${(e as Error).message})`);
    }
    if (typeof header !== "object" || header === null || Array.isArray(header))
      throw invalid(`${what}: the header is not a JSON object`);

    const metadata: Record<string, string> = {};
    const entries: SafetensorsTensorInfo[] = [];
    for (const [name, raw] of Object.entries(header)) {
      if (name === "__metadata__") {
        if (typeof raw !== "object" || raw === null || Array.isArray(raw))
          throw invalid(`${what}: __metadata__ is not an object`);
        for (const [k, v] of Object.entries(raw)) {
          if (typeof v !== "string") throw invalid(`${what}: __metadata__.${k} is not a string`);
          metadata[k] = v;
        }
        continue;
      }
      entries.push(tensorEntry(what, name, raw));
    }

    // The byte ranges must tile the data: sorted by offset, each starts where the previous ended and
    // the last ends at the end of the file.
    const dataStart = 8 + N;
    const dataSize = src.size - dataStart;
    const sorted = [...entries].sort((a, b) => a.offset - b.offset || a.byteLength - b.byteLength);
    let end = 0;
    for (const t of sorted) {
      if (t.offset !== end) {
        throw invalid(
          `${what}: tensor ${t.name} starts at data byte ${t.offset}, ${t.offset < end ? "overlapping the tensor before it" : `leaving a gap after byte ${end}`}`,
        );
      }
      end = t.offset + t.byteLength;
      if (end > dataSize) {
        throw invalid(
          `${what}: tensor ${t.name} ends at data byte ${end} but the file holds ${dataSize} data bytes (truncated?)`,
        );
      }
    }
    if (end !== dataSize)
      throw invalid(`${what}: the tensors cover ${end} data bytes but the file holds ${dataSize}`);

    const tensors = new Map<string, SafetensorsTensorInfo>();
    for (const t of entries) tensors.set(t.name, { ...t, offset: dataStart + t.offset });

    const readTensorBytes = (info: SafetensorsTensorInfo): Uint8Array => {
      const bytes = src.read(info.offset, info.byteLength);
      if (bytes.byteLength !== info.byteLength) {
        throw invalid(
          `${what}: tensor ${info.name} ends past the end of the file (did it change since it was opened?)`,
        );
      }
      return bytes;
    };
    return {
      metadata,
      tensors,
      fileSize: src.size,
      readTensorBytes,
      readTensor: (info) =>
        toFloat32(
          info.dtype,
          readTensorBytes(info),
          info.elementCount,
          `${what}: tensor ${info.name}`,
        ),
      close: () => src.close(),
    };
  } catch (e) {
    src.close();
    throw e;
  }
}

/** Opens and parses a safetensors file from disk. Call `close()` when done. */
export function openSafetensors(path: string): SafetensorsFile {
  return parseSafetensors(fileSource(path, "safetensors file"), path);
}

const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * Widens `count` little-endian values of a float dtype to f32: F16 and BF16 exactly, F64 rounded to
 * nearest. Other dtypes are `model_unsupported`.
 */
export function toFloat32(
  dtype: SafetensorsDtype,
  bytes: Uint8Array,
  count: number,
  what: string = dtype,
): Float32Array {
  const width = SAFETENSORS_DTYPES[dtype];
  if (bytes.byteLength < count * width)
    throw invalid(`${what}: ${bytes.byteLength} bytes hold fewer than ${count} ${dtype} values`);
  const out = new Float32Array(count);
  // Typed-array views need aligned offsets and a little-endian host; DataView otherwise.
  const aligned = HOST_LITTLE_ENDIAN && bytes.byteOffset % width === 0;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (dtype) {
    case "F32":
      if (aligned) out.set(new Float32Array(bytes.buffer, bytes.byteOffset, count));
      else for (let i = 0; i < count; i++) out[i] = dv.getFloat32(i * 4, true);
      return out;
    case "F16":
      if (aligned) {
        const h = new Uint16Array(bytes.buffer, bytes.byteOffset, count);
        for (let i = 0; i < count; i++) out[i] = f16ToF32(h[i]);
      } else for (let i = 0; i < count; i++) out[i] = f16ToF32(dv.getUint16(i * 2, true));
      return out;
    case "BF16": {
      // bf16 is the top half of an f32: widening is a shift.
      const u = new Uint32Array(out.buffer);
      if (aligned) {
        const h = new Uint16Array(bytes.buffer, bytes.byteOffset, count);
        for (let i = 0; i < count; i++) u[i] = h[i] << 16;
      } else for (let i = 0; i < count; i++) u[i] = dv.getUint16(i * 2, true) << 16;
      return out;
    }
    case "F64":
      for (let i = 0; i < count; i++) out[i] = dv.getFloat64(i * 8, true);
      return out;
    default:
      throw new EpicacheError(
        "model_unsupported",
        `${what}: dtype ${dtype} cannot be read as floats (F32, F16, BF16, F64 can)`,
      );
  }
}

/**
 * Writing `.kvc` files (byte table: kvc-format.ts) as a stream of chunks: the data is converted
 * straight from the cache's arrays into chunks of at most `chunkBytes`, so a large cache is never held
 * twice. int8 needs its scales before its codes: they are computed up front by one read pass (L·H·D
 * floats per tensor, not a copy of the data).
 */
import { EpicacheError } from "../errors";
import { crc32 } from "./crc32";
import { f32BitsToF16Bits } from "./f16";
import {
  KVC_DTYPES,
  KVC_LIMITS,
  KVC_VERSION,
  type KvcCache,
  type KvcDtype,
  type KvcHeader,
  LITTLE_ENDIAN_HOST,
  checkShape,
  encodeKvcHeader,
  isKvcFingerprint,
} from "./kvc-format";
import { type KvcLayout, type KvcSectionSpan, kvcLayout } from "./kvc-layout";

/**
 * Options of {@link encodeKvc}.
 *
 * @example
 * ```ts
 * encodeKvc(cache, "f16", { chunkBytes: 4 << 20 });
 * ```
 */
export interface EncodeKvcOptions {
  /** Upper bound on the size of each chunk (default 1 MiB, at least 64). */
  chunkBytes?: number;
}

const EMPTY = new Uint8Array(0);
const DEFAULT_CHUNK_BYTES = 1 << 20;
const MIN_CHUNK_BYTES = 64;

/**
 * The `.kvc` bytes of `cache` as chunks of at most `chunkBytes` (default 1 MiB), for a streaming
 * upload. Every chunk is a fresh array the consumer may keep. The cache is checked (and, for int8,
 * its scales computed) when this is called, so argument errors (`invalid_argument`: shapes, array
 * sizes, a fingerprint that is not 16 lowercase hex characters, non-finite values for int8) are thrown
 * here, not mid-stream; the cache must not change while the chunks are being read.
 *
 * @example
 * ```ts
 * const chunks = encodeKvc(cache, "f16");
 * await store.put(key, ReadableStream.from(chunks)); // or: for (const chunk of chunks) sink.write(chunk)
 * ```
 */
export function encodeKvc(
  cache: KvcCache,
  dtype: KvcDtype = "f16",
  options: EncodeKvcOptions = {},
): Iterable<Uint8Array> {
  const chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  if (!Number.isInteger(chunkBytes) || chunkBytes < MIN_CHUNK_BYTES) {
    throw new EpicacheError(
      "invalid_argument",
      `chunkBytes must be an integer ≥ ${MIN_CHUNK_BYTES}, not ${chunkBytes}`,
    );
  }
  const layout = checkCache(cache, dtype);
  const scales =
    dtype === "int8"
      ? { keys: int8Scales(cache, "keys"), values: int8Scales(cache, "values") }
      : null;
  return writeChunks(cache, layout, scales, chunkBytes);
}

/**
 * The whole `.kvc` file of `cache` in one array (what {@link encodeKvc} streams).
 *
 * @example
 * ```ts
 * const bytes = encodeKvcBytes(cache, "int8");
 * decodeKvcBytes(bytes).cache.keys[0]; // within int8 rounding of cache.keys[0]
 * ```
 */
export function encodeKvcBytes(cache: KvcCache, dtype: KvcDtype = "f16"): Uint8Array {
  const { byteLength } = checkCache(cache, dtype);
  // One chunk the size of the file: the writer fills it in place.
  const [bytes] = encodeKvc(cache, dtype, { chunkBytes: Math.max(MIN_CHUNK_BYTES, byteLength) });
  return bytes;
}

/** The layout of the file `cache` encodes to, after checking every field and array size. */
function checkCache(cache: KvcCache, dtype: KvcDtype): KvcLayout {
  const bad = (why: string): never => {
    throw new EpicacheError("invalid_argument", `cannot encode this KV cache: ${why}`);
  };
  if (!KVC_DTYPES.includes(dtype))
    bad(`dtype ${JSON.stringify(dtype)} is not one of ${KVC_DTYPES.join(", ")}`);
  if (typeof cache.fingerprint !== "string" || !isKvcFingerprint(cache.fingerprint)) {
    bad(`fingerprint ${JSON.stringify(cache.fingerprint)} is not 16 lowercase hex characters`);
  }
  const shape = checkShape(cache.layers, cache.kvHeads, cache.headDim);
  if (shape !== null) bad(shape);
  const isU32 = (n: number) => Number.isInteger(n) && n >= 0 && n <= 0xffffffff;
  if (cache.budget !== null && !isU32(cache.budget))
    bad(`budget ${cache.budget} is not a u32 (or null)`);
  if (!isU32(cache.nextPosition)) bad(`next position ${cache.nextPosition} is not a u32`);
  const D = cache.headDim;
  const count = cache.layers * cache.kvHeads;
  if (!(cache.lengths instanceof Uint32Array) || cache.lengths.length !== count)
    bad(`lengths must be a Uint32Array of ${count} (layers × KV heads)`);
  for (const [name, arrays] of [
    ["positions", cache.positions],
    ["keys", cache.keys],
    ["values", cache.values],
  ] as const) {
    if (!Array.isArray(arrays) || arrays.length !== count)
      bad(`${name} must hold ${count} arrays (one per layer and head)`);
  }
  for (let i = 0; i < count; i++) {
    const n = cache.lengths[i];
    const where = `layer ${Math.floor(i / cache.kvHeads)} head ${i % cache.kvHeads}`;
    if (n > KVC_LIMITS.maxHeadEntries)
      bad(`${where} has ${n} entries (at most ${KVC_LIMITS.maxHeadEntries})`);
    if (!(cache.positions[i] instanceof Int32Array) || cache.positions[i].length !== n)
      bad(`positions of ${where} must be an Int32Array of ${n}`);
    if (!(cache.keys[i] instanceof Float32Array) || cache.keys[i].length !== n * D)
      bad(`keys of ${where} must be a Float32Array of ${n}·${D}`);
    if (!(cache.values[i] instanceof Float32Array) || cache.values[i].length !== n * D)
      bad(`values of ${where} must be a Float32Array of ${n}·${D}`);
  }
  const header: KvcHeader = {
    version: KVC_VERSION,
    dtype,
    fingerprint: cache.fingerprint,
    layers: cache.layers,
    kvHeads: cache.kvHeads,
    headDim: D,
    budget: cache.budget,
    nextPosition: cache.nextPosition,
  };
  return kvcLayout(header, cache.lengths);
}

/**
 * Per-channel int8 scales of one tensor: f32(absmax / 127) per (ℓ, h, c), 0 for an all-zero channel.
 * Non-finite values have no scale: `invalid_argument`.
 */
function int8Scales(cache: KvcCache, tensor: "keys" | "values"): Float32Array {
  const D = cache.headDim;
  const count = cache.layers * cache.kvHeads;
  const scales = new Float32Array(count * D); // [L·H, D]
  const absmax = new Float64Array(D);
  for (let i = 0; i < count; i++) {
    const x = cache[tensor][i];
    absmax.fill(0);
    let poison = 0; // x − x is 0 for finite x, NaN for ±Infinity and NaN
    for (let j = 0, c = 0; j < x.length; j++) {
      const a = Math.abs(x[j]);
      poison += a - a;
      if (a > absmax[c]) absmax[c] = a;
      if (++c === D) c = 0;
    }
    if (poison !== 0) {
      const at = x.findIndex((v) => !Number.isFinite(v));
      throw new EpicacheError(
        "invalid_argument",
        `cannot encode this KV cache as int8: ${tensor} of layer ${Math.floor(i / cache.kvHeads)} head ${i % cache.kvHeads} hold ${x[at]} (entry ${Math.floor(at / D)}, channel ${at % D})`,
      );
    }
    for (let c = 0; c < D; c++) scales[i * D + c] = absmax[c] / 127;
  }
  return scales;
}

/** Fills fresh chunks; tracks the CRC of the section body being written across chunk boundaries. */
class ChunkWriter {
  buf: Uint8Array;
  view: DataView;
  pos = 0;
  private bodyFrom = -1; // where the body starts in `buf`; −1 outside a body
  private crc = 0;

  constructor(private readonly size: number) {
    this.buf = new Uint8Array(size);
    this.view = new DataView(this.buf.buffer);
  }

  /** Free bytes in the current chunk (allocating the next chunk after a {@link take}). */
  room(): number {
    if (this.buf.length === 0) {
      this.buf = new Uint8Array(this.size);
      this.view = new DataView(this.buf.buffer);
    }
    return this.size - this.pos;
  }

  /** The filled part of the current chunk; the next one is allocated on the next {@link room}. */
  take(): Uint8Array {
    if (this.bodyFrom >= 0) {
      this.crc = crc32(this.buf.subarray(this.bodyFrom, this.pos), this.crc);
      this.bodyFrom = 0;
    }
    const out = this.buf.subarray(0, this.pos);
    this.buf = EMPTY;
    this.pos = 0;
    return out;
  }

  beginBody(): void {
    this.bodyFrom = this.pos;
    this.crc = 0;
  }

  /** The CRC of the body written since {@link beginBody}. */
  endBody(): number {
    const crc = crc32(this.buf.subarray(this.bodyFrom, this.pos), this.crc);
    this.bodyFrom = -1;
    return crc;
  }
}

/** Writes `count` elements of `src` from `from` at `w.buf[w.pos]`; the caller made room. */
type Put<A> = (w: ChunkWriter, src: A, from: number, count: number) => void;

function* writeChunks(
  cache: KvcCache,
  layout: KvcLayout,
  scales: { keys: Float32Array; values: Float32Array } | null,
  chunkBytes: number,
): Generator<Uint8Array, void, undefined> {
  const w = new ChunkWriter(chunkBytes);
  const count = cache.layers * cache.kvHeads;
  const D = cache.headDim;
  const dtype = layout.header.dtype;

  /** Makes room for `n` (≤ 16) bytes of frame or header. */
  function* room(n: number): Generator<Uint8Array, void, undefined> {
    if (w.room() < n) {
      yield w.take();
      w.room();
    }
  }
  function* frameStart(span: KvcSectionSpan): Generator<Uint8Array, void, undefined> {
    yield* room(12);
    for (let i = 0; i < 4; i++) w.buf[w.pos + i] = span.tag.charCodeAt(i);
    w.view.setUint32(w.pos + 4, span.bodyBytes % 2 ** 32, true);
    w.view.setUint32(w.pos + 8, Math.floor(span.bodyBytes / 2 ** 32), true);
    w.pos += 12;
    w.beginBody();
  }
  function* frameEnd(): Generator<Uint8Array, void, undefined> {
    const crc = w.endBody();
    yield* room(4);
    w.view.setUint32(w.pos, crc, true);
    w.pos += 4;
  }
  /** All of `src` through `put`, `bytes` per element, split over as many chunks as it takes. */
  function* elements<A extends { length: number }>(
    src: A,
    bytes: number,
    put: Put<A>,
  ): Generator<Uint8Array, void, undefined> {
    for (let i = 0; i < src.length;) {
      const fit = Math.min(Math.floor(w.room() / bytes), src.length - i);
      if (fit === 0) {
        yield w.take();
        continue;
      }
      put(w, src, i, fit);
      w.pos += fit * bytes;
      i += fit;
    }
  }

  const header = encodeKvcHeader(layout.header);
  w.buf.set(header, 0);
  w.pos = header.length;

  // lengths/positions
  yield* frameStart(layout.lengthsPositions);
  yield* elements(cache.lengths, 4, put32);
  for (let i = 0; i < count; i++) yield* elements(cache.positions[i], 4, put32);
  yield* frameEnd();

  for (const tensor of ["keys", "values"] as const) {
    const scaleSpan = tensor === "keys" ? layout.keyScales : layout.valueScales;
    const tensorScales = scales === null ? null : scales[tensor];
    if (scaleSpan !== null && tensorScales !== null) {
      yield* frameStart(scaleSpan);
      yield* elements(tensorScales, 4, put32);
      yield* frameEnd();
    }
    yield* frameStart(layout[tensor]);
    for (let i = 0; i < count; i++) {
      const src = cache[tensor][i];
      if (dtype === "f32") yield* elements(src, 4, put32);
      else if (dtype === "f16")
        yield* elements(new Uint32Array(src.buffer, src.byteOffset, src.length), 2, putF16);
      else if (tensorScales !== null)
        yield* elements(src, 1, putInt8(tensorScales.subarray(i * D, (i + 1) * D)));
    }
    yield* frameEnd();
  }
  if (w.pos > 0) yield w.take();
}

/** 4-byte elements (u32, i32, f32) as they are: a byte copy on little-endian hosts. */
function put32(
  w: ChunkWriter,
  src: Uint32Array | Int32Array | Float32Array,
  from: number,
  count: number,
): void {
  if (LITTLE_ENDIAN_HOST) {
    w.buf.set(new Uint8Array(src.buffer, src.byteOffset + 4 * from, 4 * count), w.pos);
    return;
  }
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let k = 0; k < count; k++) w.view.setUint32(w.pos + 4 * k, bits[from + k], true);
}

/** f32 bit patterns → f16, rounded to nearest even. */
function putF16(w: ChunkWriter, bits: Uint32Array, from: number, count: number): void {
  const buf = w.buf;
  for (let k = 0, o = w.pos; k < count; k++, o += 2) {
    const h = f32BitsToF16Bits(bits[from + k]);
    buf[o] = h & 0xff;
    buf[o + 1] = h >>> 8;
  }
}

/** f32 → int8 codes of one head, `scales` its [D] channel scales. */
function putInt8(scales: Float32Array): Put<Float32Array> {
  const D = scales.length;
  return (w, src, from, count) => {
    const buf = w.buf;
    let c = from % D;
    for (let k = 0, o = w.pos; k < count; k++, o++) {
      const s = scales[c];
      let r = s > 0 ? src[from + k] / s : 0;
      r = r > 127 ? 127 : r < -127 ? -127 : r; // clamping first keeps the integer rounding below in range
      const q = r < 0 ? -((0.5 - r) | 0) : (r + 0.5) | 0; // round, halves away from zero
      buf[o] = q & 0xff;
      if (++c === D) c = 0;
    }
  };
}

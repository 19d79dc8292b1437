/**
 * Reading `.kvc` files (byte table: kvc-format.ts), whole or streamed. One parser serves both: it asks
 * for the next few bytes (at most 64 KiB at a time) and converts them straight into the decoded arrays,
 * checking each section's CRC as it goes, so a streamed file is never held whole. Every problem with the
 * data is a `store_invalid` error naming the part at fault; nothing else escapes for any input bytes.
 */
import { EpicacheError } from "../errors";
import { crc32 } from "./crc32";
import { f16Table } from "./f16";
import {
  KVC_ELEMENT_BYTES,
  KVC_HEADER_BYTES,
  type KvcCache,
  type KvcDtype,
  type KvcHeader,
  type KvcPart,
  LITTLE_ENDIAN_HOST,
  checkKvcPreamble,
  hex32,
  kvcError,
  readKvcHeader,
} from "./kvc-format";
import {
  type KvcLayout,
  type KvcSectionSpan,
  checkDeclaredLength,
  kvcLayout,
  readFrameStart,
} from "./kvc-layout";

/**
 * A decoded `.kvc` file: the cache and the dtype it was stored as.
 *
 * @example
 * ```ts
 * const { cache, dtype } = decodeKvcBytes(bytes);
 * if (cache.fingerprint !== model.fingerprint) throw new EpicacheError("store_invalid", "another model");
 * ```
 */
export interface DecodedKvc {
  dtype: KvcDtype;
  cache: KvcCache;
}

/**
 * Options of the decoders.
 *
 * @example
 * ```ts
 * decodeKvcBytes(bytes, { source: "tenants/t1/…/episode-0.kvc" }); // errors start with that name
 * ```
 */
export interface DecodeKvcOptions {
  /** Names the file in error messages (default ".kvc"). */
  source?: string;
  /**
   * {@link decodeKvc} of a stream: its size when known (an object's size, a Content-Length). It is
   * checked against the size the header and lengths imply before any data array is allocated, as
   * {@link decodeKvcBytes} does; without it, a stream that claims more than it holds fails at its end.
   */
  byteLength?: number;
  /**
   * Where to decode to: called once the header and lengths are read, it returns one array per (ℓ, h)
   * of exactly that head's size (views into a caller's own buffers, say), which the decoder fills and
   * returns in the cache instead of allocating its own. Arrays of the wrong count or size are
   * `invalid_argument`. On an error the arrays may hold part of the data.
   */
  into?: (header: KvcHeader, lengths: Uint32Array) => KvcTargets;
}

/**
 * Destination arrays for {@link DecodeKvcOptions}.into, per (ℓ, h): positions [length], keys and
 * values [length·D].
 *
 * @example
 * ```ts
 * const into = (h: KvcHeader, lengths: Uint32Array): KvcTargets => ({ positions: …, keys: …, values: … });
 * ```
 */
export interface KvcTargets {
  positions: Int32Array[];
  keys: Float32Array[];
  values: Float32Array[];
}

const BLOCK_BYTES = 1 << 16; // the most the parser asks for at once; a multiple of every element size

/** The parser wants the next `bytes` bytes (inside `part`, for truncation messages). */
interface ReadStep {
  bytes: number;
  part: KvcPart;
}
/** The parser knows the file's layout (and so its size); the driver answers with `undefined`. */
interface LayoutStep {
  layout: KvcLayout;
}
type Step = ReadStep | LayoutStep;
type Parse<T> = Generator<Step, T, Uint8Array | undefined>;

/**
 * Decodes a whole `.kvc` file held in memory into fresh arrays (none is a view of `bytes`). Any
 * malformed, truncated, corrupt or unsupported input is a `store_invalid` {@link EpicacheError} whose
 * message names the part at fault (header, lengths/positions, key scales, keys, value scales or values
 * section).
 *
 * @example
 * ```ts
 * const { cache } = decodeKvcBytes(encodeKvcBytes(cache0, "f32")); // equals cache0
 * ```
 */
export function decodeKvcBytes(bytes: Uint8Array, options: DecodeKvcOptions = {}): DecodedKvc {
  const source = options.source ?? ".kvc";
  const parser = parseKvc(source, options.into);
  let at = 0;
  let step = parser.next();
  while (step.done !== true) {
    const want = step.value;
    if ("layout" in want) {
      // The size is known before any data array is allocated: a truncated file fails here, cheaply.
      checkSize(want.layout, bytes.length, source);
      step = parser.next(undefined);
      continue;
    }
    if (bytes.length - at < want.bytes) throw truncated(source, want.part);
    step = parser.next(bytes.subarray(at, at + want.bytes));
    at += want.bytes;
  }
  if (at !== bytes.length) throw trailingBytes(source, bytes.length - at);
  return step.value;
}

/**
 * Decodes a `.kvc` file from a whole array or from a stream of chunks of any sizes (a `ReadableStream`
 * of an object store's body, a Node stream, an array of chunks), holding no more of it than one chunk
 * plus 64 KiB besides the decoded arrays. Errors as {@link decodeKvcBytes}; errors of the source itself
 * pass through. The source is read to its end (trailing bytes are an error) or, on an error, closed.
 * Pass `byteLength` when the size is known, so that a file claiming more than it holds fails before
 * its arrays are allocated.
 *
 * @example
 * ```ts
 * const object = await bucket.get(key); // an R2 / S3 object: a ReadableStream body and a size
 * const { cache, dtype } = await decodeKvc(object.body, { source: key, byteLength: object.size });
 * ```
 */
export async function decodeKvc(
  source: Uint8Array | AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  options: DecodeKvcOptions = {},
): Promise<DecodedKvc> {
  if (source instanceof Uint8Array) return decodeKvcBytes(source, options);
  const name = options.source ?? ".kvc";
  const iterator: AsyncIterator<Uint8Array> | Iterator<Uint8Array> =
    Symbol.asyncIterator in source ? source[Symbol.asyncIterator]() : source[Symbol.iterator]();
  let chunk: Uint8Array = new Uint8Array(0);
  let at = 0;
  let ended = false;
  /** Moves to the next non-empty chunk; false at the end of the source. */
  const pull = async (): Promise<boolean> => {
    for (;;) {
      const next = await iterator.next();
      if (next.done === true) {
        ended = true;
        return false;
      }
      const value: unknown = next.value;
      if (!(value instanceof Uint8Array)) {
        throw new EpicacheError(
          "invalid_argument",
          `decodeKvc: the source yielded ${typeof value}, not a Uint8Array`,
        );
      }
      if (value.length > 0) {
        chunk = value;
        at = 0;
        return true;
      }
    }
  };
  try {
    const parser = parseKvc(name, options.into);
    let step = parser.next();
    while (step.done !== true) {
      const want = step.value;
      if ("layout" in want) {
        if (options.byteLength !== undefined) checkSize(want.layout, options.byteLength, name);
        step = parser.next(undefined);
        continue;
      }
      let got: Uint8Array;
      if (chunk.length - at >= want.bytes) {
        got = chunk.subarray(at, at + want.bytes);
        at += want.bytes;
      } else {
        // Across chunk boundaries: gather into a block (≤ 64 KiB).
        got = new Uint8Array(want.bytes);
        for (let filled = 0; filled < want.bytes;) {
          if (at === chunk.length && !(await pull())) throw truncated(name, want.part);
          const n = Math.min(want.bytes - filled, chunk.length - at);
          got.set(chunk.subarray(at, at + n), filled);
          filled += n;
          at += n;
        }
      }
      step = parser.next(got);
    }
    let extra = chunk.length - at;
    while (await pull()) extra += chunk.length;
    if (extra > 0) throw trailingBytes(name, extra);
    return step.value;
  } finally {
    if (!ended) await iterator.return?.();
  }
}

/** `store_invalid` unless the file has the size its header and lengths imply. */
function checkSize(layout: KvcLayout, actual: number, source: string): void {
  const size = layout.byteLength;
  if (size > actual)
    throw kvcError(
      source,
      null,
      `truncated: the header and lengths describe ${size} bytes, the file has ${actual}`,
    );
  if (size < actual) throw trailingBytes(source, actual - size);
}

function truncated(source: string, part: KvcPart): EpicacheError {
  return kvcError(source, part, "truncated: the data ends inside it");
}

function trailingBytes(source: string, n: number): EpicacheError {
  return kvcError(source, null, `${n} trailing bytes after the values section`);
}

/** Asks the driver for exactly `bytes` bytes. The view is only valid until the parser asks again. */
function* read(bytes: number, part: KvcPart): Parse<Uint8Array> {
  const got = yield { bytes, part };
  if (got === undefined || got.length !== bytes)
    throw new EpicacheError("internal", `kvc reader: asked for ${bytes} bytes, got ${got?.length}`);
  return got;
}

/**
 * Streams `bytes` bytes of a section body in blocks of ≤ 64 KiB into `consume` (which must not keep
 * the block) and returns the CRC-32 continued from `crcBefore` (the CRC of the body before them).
 */
function* body(
  bytes: number,
  part: KvcPart,
  consume: (block: Uint8Array) => void,
  crcBefore = 0,
): Parse<number> {
  let crc = crcBefore;
  for (let left = bytes; left > 0;) {
    const n = Math.min(left, BLOCK_BYTES);
    const block = yield* read(n, part);
    crc = crc32(block, crc);
    consume(block);
    left -= n;
  }
  return crc;
}

/** Reads a frame's tag and byte length; checks the length when the layout knows it. */
function* frameStart(
  tag: string,
  part: KvcSectionSpan["part"],
  span: KvcSectionSpan | null,
  source: string,
): Parse<number> {
  const start = yield* read(12, part);
  const declared = readFrameStart(
    new DataView(start.buffer, start.byteOffset, 12),
    0,
    tag,
    part,
    source,
  );
  if (span !== null) checkDeclaredLength(declared, span, source);
  return declared;
}

/** Reads a frame's CRC and compares it with the one computed over the body. */
function* frameEnd(part: KvcPart, computed: number, source: string): Parse<void> {
  const end = yield* read(4, part);
  const stored = new DataView(end.buffer, end.byteOffset, 4).getUint32(0, true);
  if (stored !== computed)
    throw kvcError(
      source,
      part,
      `CRC-32 mismatch (stored ${hex32(stored)}, computed ${hex32(computed)})`,
    );
}

/** A typed array of `n` elements; a size the runtime cannot allocate is the file's fault. */
function allocate<T>(make: (n: number) => T, n: number, source: string, part: KvcPart): T {
  try {
    return make(n);
  } catch (e) {
    if (e instanceof RangeError)
      throw kvcError(source, part, `${n} elements are more than this runtime can allocate`);
    throw e;
  }
}

/**
 * Fills one array per (ℓ, h) from consecutive blocks: `convert(block, byteOffset, dest, from, count, head)`
 * writes `count` elements. Arrays are allocated as their data arrives, so a file that claims more than it
 * holds fails before most of that memory is taken.
 */
function perHead<T extends { length: number }>(
  sizes: (head: number) => number,
  heads: number,
  elementBytes: number,
  make: (n: number, head: number) => T,
  convert: (
    block: Uint8Array,
    byteOffset: number,
    dest: T,
    from: number,
    count: number,
    head: number,
  ) => void,
  source: string,
  part: KvcPart,
): { arrays: T[]; consume: (block: Uint8Array) => void; finish: () => void } {
  const arrays: T[] = [];
  let head = -1;
  let dest = make(0, -1);
  let filled = 0;
  const advance = () => {
    // Next head with room (empty heads get empty arrays on the way).
    while (filled === dest.length && head + 1 < heads) {
      head++;
      const h = head;
      dest = allocate((n) => make(n, h), sizes(head), source, part);
      arrays.push(dest);
      filled = 0;
    }
  };
  const consume = (block: Uint8Array) => {
    for (let p = 0; p < block.length;) {
      advance();
      const n = Math.min(dest.length - filled, (block.length - p) / elementBytes);
      if (n === 0)
        throw new EpicacheError("internal", `kvc reader: more ${part} data than its heads hold`);
      convert(block, p, dest, filled, n, head);
      filled += n;
      p += n * elementBytes;
    }
  };
  const finish = () => {
    advance(); // trailing empty heads
    if (arrays.length !== heads || filled !== dest.length)
      throw new EpicacheError("internal", `kvc reader: ${part} ended early`);
  };
  return { arrays, consume, finish };
}

/** Copies 4-byte little-endian elements (u32, i32, f32) into `dest`. */
function copy32(
  block: Uint8Array,
  p: number,
  dest: Uint32Array | Int32Array | Float32Array,
  from: number,
  count: number,
): void {
  if (LITTLE_ENDIAN_HOST) {
    new Uint8Array(dest.buffer, dest.byteOffset + 4 * from, 4 * count).set(
      block.subarray(p, p + 4 * count),
    );
    return;
  }
  const dv = new DataView(block.buffer, block.byteOffset + p, 4 * count);
  const bits = new Uint32Array(dest.buffer, dest.byteOffset, dest.length);
  for (let k = 0; k < count; k++) bits[from + k] = dv.getUint32(4 * k, true);
}

/** A consumer that fills `dest` with consecutive 4-byte little-endian elements. */
function filler(dest: Uint32Array | Float32Array): (block: Uint8Array) => void {
  let at = 0;
  return (block) => {
    copy32(block, 0, dest, at, block.length / 4);
    at += block.length / 4;
  };
}

/** The parser: header, lengths/positions, (key scales), keys, (value scales), values. */
function* parseKvc(source: string, into?: DecodeKvcOptions["into"]): Parse<DecodedKvc> {
  // Header: magic and version first, so another version is named as such whatever its header size.
  const preamble = (yield* read(8, "header")).slice(); // kept across the next read
  checkKvcPreamble(preamble, source);
  const headerBytes = new Uint8Array(KVC_HEADER_BYTES);
  headerBytes.set(preamble, 0);
  headerBytes.set(yield* read(KVC_HEADER_BYTES - 8, "header"), 8);
  const header = readKvcHeader(headerBytes, source);
  const { layers: L, kvHeads: H, headDim: D, dtype } = header;
  const count = L * H; // ≤ 2^24 (header limits)

  // lengths/positions. The frame's byte length is checked as soon as the lengths give the expected one.
  const declared = yield* frameStart("LPOS", "lengths/positions", null, source);
  const lengths = new Uint32Array(count);
  let crc = yield* body(4 * count, "lengths/positions", filler(lengths));
  const layout = kvcLayout(header, lengths, source);
  checkDeclaredLength(declared, layout.lengthsPositions, source);
  yield { layout };
  const targets =
    into === undefined ? null : checkTargets(into(header, lengths.slice()), lengths, D);
  const positions = perHead(
    (i) => lengths[i],
    count,
    4,
    (n, i) => targets?.positions[i] ?? new Int32Array(n),
    copy32,
    source,
    "lengths/positions",
  );
  crc = yield* body(
    layout.lengthsPositions.bodyBytes - 4 * count,
    "lengths/positions",
    positions.consume,
    crc,
  );
  positions.finish();
  yield* frameEnd("lengths/positions", crc, source);

  const tensor = function* (
    span: KvcSectionSpan,
    scaleSpan: KvcSectionSpan | null,
    provided: Float32Array[] | undefined,
  ): Parse<Float32Array[]> {
    let scales: Float32Array | null = null;
    if (scaleSpan !== null) {
      // int8 scales: [L·H, D] f32, each finite and ≥ 0 (checked once the CRC has passed).
      yield* frameStart(scaleSpan.tag, scaleSpan.part, scaleSpan, source);
      const all = allocate((n) => new Float32Array(n), count * D, source, scaleSpan.part);
      yield* frameEnd(
        scaleSpan.part,
        yield* body(scaleSpan.bodyBytes, scaleSpan.part, filler(all)),
        source,
      );
      for (let k = 0; k < all.length; k++) {
        if (!(all[k] >= 0) || all[k] === Infinity) {
          const head = Math.floor(k / D);
          throw kvcError(
            source,
            scaleSpan.part,
            `scale ${all[k]} of layer ${Math.floor(head / H)} head ${head % H} channel ${k % D} is not finite and ≥ 0`,
          );
        }
      }
      scales = all;
    }
    yield* frameStart(span.tag, span.part, span, source);
    const convert = converter(dtype, scales, H, D, source, span.part);
    const data = perHead(
      (i) => lengths[i] * D,
      count,
      KVC_ELEMENT_BYTES[dtype],
      (n, i) => provided?.[i] ?? new Float32Array(n),
      convert,
      source,
      span.part,
    );
    yield* frameEnd(span.part, yield* body(span.bodyBytes, span.part, data.consume), source);
    data.finish();
    return data.arrays;
  };
  const keys = yield* tensor(layout.keys, layout.keyScales, targets?.keys);
  const values = yield* tensor(layout.values, layout.valueScales, targets?.values);

  const cache: KvcCache = {
    fingerprint: header.fingerprint,
    layers: L,
    kvHeads: H,
    headDim: D,
    budget: header.budget,
    nextPosition: header.nextPosition,
    lengths,
    positions: positions.arrays,
    keys,
    values,
  };
  return { dtype, cache };
}

/** The caller's destination arrays, checked against the lengths. */
function checkTargets(targets: KvcTargets, lengths: Uint32Array, D: number): KvcTargets {
  const bad = (why: string): never => {
    throw new EpicacheError("invalid_argument", `decodeKvc into: ${why}`);
  };
  for (const [name, arrays, per] of [
    ["positions", targets.positions, 1],
    ["keys", targets.keys, D],
    ["values", targets.values, D],
  ] as const) {
    if (arrays.length !== lengths.length)
      bad(`${arrays.length} ${name} arrays for ${lengths.length} heads`);
    for (let i = 0; i < lengths.length; i++) {
      if (arrays[i].length !== lengths[i] * per)
        bad(`${name} array ${i} holds ${arrays[i].length} elements, not ${lengths[i] * per}`);
    }
  }
  return targets;
}

/** Block → f32 conversion for the dtype (int8: with the per-(ℓ, h) channel scales, [L·H, D]). */
function converter(
  dtype: KvcDtype,
  scales: Float32Array | null,
  H: number,
  D: number,
  source: string,
  part: KvcPart,
): (
  block: Uint8Array,
  p: number,
  dest: Float32Array,
  from: number,
  count: number,
  head: number,
) => void {
  if (dtype === "f32") return copy32;
  if (dtype === "f16") {
    const table = f16Table();
    return (block, p, dest, from, count) => {
      for (let k = 0, o = p; k < count; k++, o += 2)
        dest[from + k] = table[block[o] | (block[o + 1] << 8)];
    };
  }
  const s = scales ?? new Float32Array(0);
  return (block, p, dest, from, count, head) => {
    const codes = new Int8Array(block.buffer, block.byteOffset + p, count);
    const base = head * D;
    let c = from % D;
    for (let k = 0; k < count; k++) {
      const q = codes[k];
      if (q === -128) {
        const at = from + k;
        const where = `layer ${Math.floor(head / H)} head ${head % H} entry ${Math.floor(at / D)} channel ${at % D}`;
        throw kvcError(source, part, `int8 code -128 (outside -127 … 127) at ${where}`);
      }
      dest[from + k] = q * s[base + c];
      if (++c === D) c = 0;
    }
  };
}

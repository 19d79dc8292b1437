/**
 * The `.kvc` format, version 1: one episode's KV cache as stored in the object store
 * (`…/versions/{version}/episode-{e}.kvc`). Laid out like llama2.c's v1 export: a magic, a version,
 * explicit fields in a fixed header, then the data; no value doubles as a flag. All integers and floats
 * are little-endian. Offsets are in bytes.
 *
 * Header (44 bytes, fixed):
 *
 *   offset  size  type    field
 *   0       4     u8[4]   magic "EKVC" (45 4b 56 43)
 *   4       2     u16     format version: 1
 *   6       2     u16     flags: reserved, must be 0 (a version-1 reader rejects any set bit)
 *   8       2     u16     dtype of the K/V data: 0 f32, 1 f16, 2 int8
 *   10      2     u16     has_budget: 0 no budget (Full KV), 1 the budget field holds M
 *   12      8     u8[8]   model fingerprint: its 16 lowercase hex characters as 8 bytes, in reading
 *                         order ("0123456789abcdef" → 01 23 45 67 89 ab cd ef)
 *   20      4     u32     L, layers (1 … 65535)
 *   24      4     u32     H, KV heads per layer (1 … 65535; L·H ≤ 2^24)
 *   28      4     u32     D, head dim (1 … 65535)
 *   32      4     u32     budget M: KV entries per head per layer, on average (any u32, 0xffffffff
 *                         included); must be 0 when has_budget is 0
 *   36      4     u32     next position: the absolute position the next token takes
 *   40      4     u32     CRC-32 of bytes 0 … 39
 *
 * Then the sections, each framed the same way (N = body bytes):
 *
 *   offset  size  type    field
 *   +0      4     u8[4]   tag (ASCII, below)
 *   +4      8     u64     N; must equal what the header and the lengths imply (below)
 *   +12     N             body
 *   +12+N   4     u32     CRC-32 of the body
 *
 * in this order (T = Σ lengths, the entries of all heads; e = 4 for f32, 2 for f16, 1 for int8):
 *
 *   tag     dtypes  body                                                                  N
 *   "LPOS"  all     lengths/positions: u32 length[L·H] (index ℓ·H + h), then for every    4·(L·H + T)
 *                   (ℓ, h) in that order its i32 original positions[length]
 *   "KSCL"  int8    key scales: f32 scale[L·H·D] (index (ℓ·H + h)·D + c)                  4·L·H·D
 *   "KEYS"  all     keys: for every (ℓ, h) in order, [length, D] row-major, as the dtype  T·D·e
 *   "VSCL"  int8    value scales, as "KSCL"                                               4·L·H·D
 *   "VALS"  all     values, as "KEYS"                                                     T·D·e
 *
 * The file ends with the CRC of "VALS"; trailing bytes are an error. Elements: f32 as stored; f16 as
 * IEEE binary16 bit patterns (u16), rounded to nearest even; int8 as i8 codes in [-127, 127] (−128 is
 * invalid), value = code × scale, where the scale of channel c of head (ℓ, h) is the f32
 * absmax(|x| over that head's entries in channel c) / 127 (symmetric; 0 for an all-zero channel or an
 * empty head) and code = round(x / scale), halves away from zero, clamped to ±127.
 *
 * Nothing is aligned: readers copy. A layer's keys (and values, positions, scales) are contiguous, so a
 * reader can fetch one layer with ranged reads (kvc-layout.ts). Size of a SmolLM2 cache
 * (30 × 3 × 64) holding 1024 entries per head as f16: 44 + 16 + 4·(90 + 92160) + 2·(16 + 92160·64·2)
 * = 23 962 052 bytes.
 *
 * Errors reading a file are `store_invalid` ("a stored cache that is malformed, truncated …") and name
 * the part at fault: `header`, `lengths/positions section`, `key scales section`, `keys section`,
 * `value scales section`, `values section`.
 */
import { EpicacheError } from "../errors";
import { crc32 } from "./crc32";

/**
 * The magic, bytes 0 … 3 of every `.kvc` file: "EKVC".
 *
 * @example
 * ```ts
 * new TextDecoder().decode(bytes.subarray(0, 4)) === KVC_MAGIC; // a .kvc file (of some version)
 * ```
 */
export const KVC_MAGIC = "EKVC";
/**
 * The format version this module writes and the only one it reads.
 *
 * @example
 * ```ts
 * readKvcHeader(bytes).version === KVC_VERSION; // always, or readKvcHeader has thrown
 * ```
 */
export const KVC_VERSION = 1;
/**
 * Size of the fixed header in bytes (its CRC included): the first ranged read.
 *
 * @example
 * ```ts
 * const header = readKvcHeader(await get(0, KVC_HEADER_BYTES));
 * ```
 */
export const KVC_HEADER_BYTES = 44;
/**
 * Size of a section's frame around its body: tag (4), u64 byte length (8), CRC-32 (4).
 *
 * @example
 * ```ts
 * layout.keys.end - layout.keys.offset === KVC_FRAME_BYTES + layout.keys.bodyBytes; // true
 * ```
 */
export const KVC_FRAME_BYTES = 16;

/**
 * Reader and writer limits (header table): they bound what a hostile header can make a reader
 * allocate before its data arrives.
 *
 * @example
 * ```ts
 * if (config.numLayers > KVC_LIMITS.maxLayers) throw …; // such a model's caches cannot be stored
 * ```
 */
export const KVC_LIMITS = {
  maxLayers: 65535,
  maxKvHeads: 65535,
  maxHeadDim: 65535,
  /** L·H. */
  maxLayerHeads: 2 ** 24,
  /** Entries of one head (its positions are i32). */
  maxHeadEntries: 2 ** 31 - 1,
} as const;

/**
 * How K and V are stored: `f32` exactly, `f16` rounded to nearest even (the default: half the size,
 * within f16 rounding), `int8` with per-channel scales (a quarter of f32, error ≤ scale / 2).
 *
 * @example
 * ```ts
 * const dtype: KvcDtype = "f16";
 * ```
 */
export type KvcDtype = "f32" | "f16" | "int8";

/** Dtype codes of the header, in code order. */
export const KVC_DTYPES: readonly KvcDtype[] = ["f32", "f16", "int8"];

/** Bytes per stored K/V element. */
export const KVC_ELEMENT_BYTES: Readonly<Record<KvcDtype, number>> = { f32: 4, f16: 2, int8: 1 };

/**
 * One episode's KV cache as the codec reads and writes it, independent of any runtime's cache layout.
 * Per-(layer, head) arrays are indexed `ℓ·H + h`; they may be `subarray` views of a runtime's buffers
 * (e.g. `keys.subarray(h·capacity·D, (h·capacity + length)·D)`), so encoding copies nothing up front.
 *
 * @example
 * ```ts
 * const cache: KvcCache = {
 *   fingerprint: "0123456789abcdef", layers: 1, kvHeads: 1, headDim: 2, budget: 128, nextPosition: 9,
 *   lengths: new Uint32Array([1]),
 *   positions: [new Int32Array([4])],
 *   keys: [new Float32Array([0.5, -1])],
 *   values: [new Float32Array([2, 3])],
 * };
 * ```
 */
export interface KvcCache {
  /** The model's fingerprint: 16 lowercase hex characters (the first 64 bits of its SHA-256). */
  fingerprint: string;
  /** L. */
  layers: number;
  /** H: KV heads per layer. */
  kvHeads: number;
  /** D. */
  headDim: number;
  /** M, entries per head per layer on average; null for a cache kept without eviction (Full KV). */
  budget: number | null;
  /** The absolute position the next token takes (the length of the history fed so far). */
  nextPosition: number;
  /** Entries per (ℓ, h). */
  lengths: Uint32Array; // [L·H]
  /** Original (RoPE) positions of the entries, per (ℓ, h). */
  positions: Int32Array[]; // [L·H][length]
  /** Keys per (ℓ, h). */
  keys: Float32Array[]; // [L·H][length·D], row-major [length, D]
  /** Values per (ℓ, h). */
  values: Float32Array[]; // [L·H][length·D]
}

/**
 * The fields of a `.kvc` header, validated.
 *
 * @example
 * ```ts
 * const header = readKvcHeader(bytes.subarray(0, KVC_HEADER_BYTES));
 * if (header.fingerprint !== model.fingerprint) throw …;
 * ```
 */
export interface KvcHeader {
  version: number;
  dtype: KvcDtype;
  fingerprint: string;
  layers: number;
  kvHeads: number;
  headDim: number;
  budget: number | null;
  nextPosition: number;
}

/**
 * A part of a `.kvc` file, as error messages name it ("header", or "<part> section").
 *
 * @example
 * ```ts
 * const part: KvcPart = "key scales"; // messages read ".kvc: key scales section: CRC-32 mismatch …"
 * ```
 */
export type KvcPart =
  "header" | "lengths/positions" | "key scales" | "keys" | "value scales" | "values";

/** "header", or "<part> section". */
export function partLabel(part: KvcPart): string {
  return part === "header" ? "header" : `${part} section`;
}

/** The `store_invalid` error for `part` of the file `source`. */
export function kvcError(source: string, part: KvcPart | null, why: string): EpicacheError {
  return new EpicacheError(
    "store_invalid",
    part === null ? `${source}: ${why}` : `${source}: ${partLabel(part)}: ${why}`,
  );
}

/** `0x…` with 8 hex digits, for CRCs in messages. */
export function hex32(n: number): string {
  return `0x${n.toString(16).padStart(8, "0")}`;
}

const MAGIC_U32 = 0x43564b45; // "EKVC" read as a little-endian u32
const FINGERPRINT = /^[0-9a-f]{16}$/;

/** True when the host stores typed arrays little-endian (every current one); else the codec goes through DataView. */
export const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** The 44 header bytes of `header` (its CRC included). The caller has validated the fields. */
export function encodeKvcHeader(header: KvcHeader): Uint8Array {
  const out = new Uint8Array(KVC_HEADER_BYTES);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, MAGIC_U32, true);
  dv.setUint16(4, header.version, true);
  dv.setUint16(6, 0, true);
  dv.setUint16(8, KVC_DTYPES.indexOf(header.dtype), true);
  dv.setUint16(10, header.budget === null ? 0 : 1, true);
  for (let i = 0; i < 8; i++)
    out[12 + i] = Number.parseInt(header.fingerprint.slice(2 * i, 2 * i + 2), 16);
  dv.setUint32(20, header.layers, true);
  dv.setUint32(24, header.kvHeads, true);
  dv.setUint32(28, header.headDim, true);
  dv.setUint32(32, header.budget ?? 0, true);
  dv.setUint32(36, header.nextPosition, true);
  dv.setUint32(40, crc32(out.subarray(0, 40)), true);
  return out;
}

/**
 * Checks the first 8 header bytes (magic, version) on their own, so that a file of another version is
 * reported as such even when its header is shorter than version 1's.
 */
export function checkKvcPreamble(bytes: Uint8Array, source: string): void {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, 8);
  const magic = dv.getUint32(0, true);
  if (magic !== MAGIC_U32) {
    throw kvcError(
      source,
      "header",
      `bad magic ${hex32(magic)} (expected "EKVC"): not a .kvc file`,
    );
  }
  const version = dv.getUint16(4, true);
  if (version !== KVC_VERSION) {
    throw kvcError(
      source,
      "header",
      `format version ${version} is not supported (this reader knows ${KVC_VERSION})`,
    );
  }
}

/**
 * Reads and validates the fixed header from the first {@link KVC_HEADER_BYTES} bytes of a `.kvc` file
 * (more are ignored): magic and version, then the header CRC, then every field. Failures are
 * `store_invalid` errors naming the header.
 *
 * @example
 * ```ts
 * const first = await store.getRange(key, 0, KVC_HEADER_BYTES);
 * const header = readKvcHeader(first); // { version: 1, dtype: "f16", fingerprint: "…", layers: 30, … }
 * ```
 */
export function readKvcHeader(bytes: Uint8Array, source = ".kvc"): KvcHeader {
  if (bytes.length < 8)
    throw kvcError(source, "header", `truncated: ${bytes.length} of ${KVC_HEADER_BYTES} bytes`);
  checkKvcPreamble(bytes, source);
  if (bytes.length < KVC_HEADER_BYTES)
    throw kvcError(source, "header", `truncated: ${bytes.length} of ${KVC_HEADER_BYTES} bytes`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, KVC_HEADER_BYTES);
  const fail = (why: string): never => {
    throw kvcError(source, "header", why);
  };
  const stored = dv.getUint32(40, true);
  const computed = crc32(bytes.subarray(0, 40));
  if (stored !== computed)
    fail(`CRC-32 mismatch (stored ${hex32(stored)}, computed ${hex32(computed)})`);
  const flags = dv.getUint16(6, true);
  if (flags !== 0)
    fail(
      `flags 0x${flags.toString(16).padStart(4, "0")} are set; version ${KVC_VERSION} defines none`,
    );
  const dtypeCode = dv.getUint16(8, true);
  const dtype = KVC_DTYPES[dtypeCode];
  if (dtype === undefined) fail(`dtype code ${dtypeCode} is unknown (0 f32, 1 f16, 2 int8)`);
  const hasBudget = dv.getUint16(10, true);
  if (hasBudget > 1) fail(`has_budget is ${hasBudget} (0 or 1)`);
  const budget = dv.getUint32(32, true);
  if (hasBudget === 0 && budget !== 0) fail(`budget field is ${budget} but has_budget is 0`);
  const layers = dv.getUint32(20, true);
  const kvHeads = dv.getUint32(24, true);
  const headDim = dv.getUint32(28, true);
  const shapeError = checkShape(layers, kvHeads, headDim);
  if (shapeError !== null) fail(shapeError);
  let fingerprint = "";
  for (let i = 0; i < 8; i++) fingerprint += bytes[12 + i].toString(16).padStart(2, "0");
  return {
    version: KVC_VERSION,
    dtype,
    fingerprint,
    layers,
    kvHeads,
    headDim,
    budget: hasBudget === 1 ? budget : null,
    nextPosition: dv.getUint32(36, true),
  };
}

/** Why L, H, D are out of the limits, or null. */
export function checkShape(layers: number, kvHeads: number, headDim: number): string | null {
  const within = (n: number, max: number) => Number.isInteger(n) && n >= 1 && n <= max;
  if (!within(layers, KVC_LIMITS.maxLayers))
    return `layers ${layers} is out of range (1 … ${KVC_LIMITS.maxLayers})`;
  if (!within(kvHeads, KVC_LIMITS.maxKvHeads))
    return `KV heads ${kvHeads} is out of range (1 … ${KVC_LIMITS.maxKvHeads})`;
  if (!within(headDim, KVC_LIMITS.maxHeadDim))
    return `head dim ${headDim} is out of range (1 … ${KVC_LIMITS.maxHeadDim})`;
  if (layers * kvHeads > KVC_LIMITS.maxLayerHeads)
    return `layers × KV heads ${layers * kvHeads} exceeds ${KVC_LIMITS.maxLayerHeads}`;
  return null;
}

/** True for a fingerprint the header can hold: 16 lowercase hex characters. */
export function isKvcFingerprint(s: string): boolean {
  return FINGERPRINT.test(s);
}

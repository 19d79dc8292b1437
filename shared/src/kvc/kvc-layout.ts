/**
 * Where everything sits in a `.kvc` file (byte table: kvc-format.ts), computed from the header and the
 * per-head lengths alone. That is enough for ranged reads of one layer from an object store:
 *
 *   1. fetch bytes [0, KVC_HEADER_BYTES)                  → readKvcHeader
 *   2. fetch kvcLengthsRange(header)                      → readKvcLayout(header, bytes)
 *   3. fetch the ranges of kvcLayerRange(layout, ℓ)       → that layer's positions, keys, values
 *                                                            (and, for int8, its key and value scales)
 *
 * Known limit: section CRCs cover whole sections, so bytes fetched by range cannot be checked against
 * them; a reader that needs verified data decodes the whole file (decodeKvc) once.
 */
import { EpicacheError } from "../errors";
import {
  KVC_ELEMENT_BYTES,
  KVC_FRAME_BYTES,
  KVC_HEADER_BYTES,
  KVC_LIMITS,
  type KvcHeader,
  type KvcPart,
  kvcError,
} from "./kvc-format";

/**
 * One section: where its frame starts, where its body starts and how long the body is.
 *
 * @example
 * ```ts
 * const { bodyOffset, bodyBytes } = layout.keys; // keys of every head, in (ℓ, h) order
 * ```
 */
export interface KvcSectionSpan {
  /** Its 4-character tag: "LPOS", "KSCL", "KEYS", "VSCL" or "VALS". */
  tag: string;
  part: Exclude<KvcPart, "header">;
  /** File offset of the frame (its tag). */
  offset: number;
  /** File offset of the body: `offset + 12`. */
  bodyOffset: number;
  bodyBytes: number;
  /** File offset just past the section's CRC: `bodyOffset + bodyBytes + 4`. */
  end: number;
}

/**
 * The positions of all sections of one `.kvc` file.
 *
 * @example
 * ```ts
 * const layout = kvcLayout(header, lengths);
 * layout.byteLength; // the file's size
 * layout.sections.map((s) => s.tag); // ["LPOS", "KEYS", "VALS"] (f32, f16) or with "KSCL", "VSCL" (int8)
 * ```
 */
export interface KvcLayout {
  header: KvcHeader;
  lengths: Uint32Array; // [L·H]
  /** Entries stored before head (ℓ, h) in (ℓ, h) order; the last element is T, all entries. */
  entryOffsets: Float64Array; // [L·H + 1]
  lengthsPositions: KvcSectionSpan;
  keyScales: KvcSectionSpan | null;
  keys: KvcSectionSpan;
  valueScales: KvcSectionSpan | null;
  values: KvcSectionSpan;
  /** The sections in file order. */
  sections: KvcSectionSpan[];
  /** The size of the whole file. */
  byteLength: number;
}

/**
 * A byte range of a file: `[offset, offset + byteLength)` (an HTTP `Range: bytes=offset-(offset+byteLength-1)`).
 *
 * @example
 * ```ts
 * const r: KvcByteRange = { offset: 44, byteLength: 372 };
 * ```
 */
export interface KvcByteRange {
  offset: number;
  byteLength: number;
}

/**
 * What to fetch for one layer: each range holds that layer's heads one after the other (h = 0 … H−1),
 * each head `lengths[h]` entries long.
 *
 * @example
 * ```ts
 * const r = kvcLayerRange(layout, 3);
 * const keyBytes = await store.getRange(key, r.keys.offset, r.keys.byteLength); // [Σ lengths, D] of the dtype
 * ```
 */
export interface KvcLayerRange {
  layer: number;
  /** Entries per head of this layer. */
  lengths: Uint32Array; // [H]
  /** i32 positions, [Σ lengths]. */
  positions: KvcByteRange;
  /** f32 scales [H, D]; null unless int8. */
  keyScales: KvcByteRange | null;
  /** [Σ lengths, D] elements of the dtype. */
  keys: KvcByteRange;
  valueScales: KvcByteRange | null;
  values: KvcByteRange;
}

/**
 * The layout of the file with this header and these per-(ℓ, h) lengths. Lengths that cannot belong to
 * such a file (wrong count, a head over {@link KVC_LIMITS}.maxHeadEntries) are `store_invalid`, naming
 * the lengths/positions section.
 *
 * @example
 * ```ts
 * const layout = kvcLayout(header, new Uint32Array([2, 1]));
 * layout.keys.bodyOffset; // where the first key element is
 * ```
 */
export function kvcLayout(header: KvcHeader, lengths: Uint32Array, source = ".kvc"): KvcLayout {
  const { layers: L, kvHeads: H, headDim: D, dtype } = header;
  const count = L * H;
  const fail = (why: string): never => {
    throw kvcError(source, "lengths/positions", why);
  };
  if (lengths.length !== count) fail(`${lengths.length} lengths for ${L} layers × ${H} heads`);
  const entryOffsets = new Float64Array(count + 1);
  let total = 0;
  for (let i = 0; i < count; i++) {
    const n = lengths[i];
    if (n > KVC_LIMITS.maxHeadEntries)
      fail(
        `layer ${Math.floor(i / H)} head ${i % H} has ${n} entries (at most ${KVC_LIMITS.maxHeadEntries})`,
      );
    entryOffsets[i] = total;
    total += n;
  }
  entryOffsets[count] = total;
  const e = KVC_ELEMENT_BYTES[dtype];
  const dataBytes = total * D * e;
  if (!Number.isSafeInteger(dataBytes))
    fail(`${total} entries of ${D} channels are too many to address`);

  let at = KVC_HEADER_BYTES;
  const span = (tag: string, part: KvcSectionSpan["part"], bodyBytes: number): KvcSectionSpan => {
    const s = {
      tag,
      part,
      offset: at,
      bodyOffset: at + 12,
      bodyBytes,
      end: at + KVC_FRAME_BYTES + bodyBytes,
    };
    at = s.end;
    return s;
  };
  const int8 = dtype === "int8";
  const lengthsPositions = span("LPOS", "lengths/positions", 4 * (count + total));
  const keyScales = int8 ? span("KSCL", "key scales", 4 * count * D) : null;
  const keys = span("KEYS", "keys", dataBytes);
  const valueScales = int8 ? span("VSCL", "value scales", 4 * count * D) : null;
  const values = span("VALS", "values", dataBytes);
  const sections = [lengthsPositions, keyScales, keys, valueScales, values].filter(
    (s): s is KvcSectionSpan => s !== null,
  );
  return {
    header,
    lengths,
    entryOffsets,
    lengthsPositions,
    keyScales,
    keys,
    valueScales,
    values,
    sections,
    byteLength: at,
  };
}

/**
 * The byte range that holds the "LPOS" frame start and the lengths: what {@link readKvcLayout} needs
 * after the header.
 *
 * @example
 * ```ts
 * const r = kvcLengthsRange(header); // { offset: 44, byteLength: 12 + 4·L·H }
 * ```
 */
export function kvcLengthsRange(header: KvcHeader): KvcByteRange {
  return { offset: KVC_HEADER_BYTES, byteLength: 12 + 4 * header.layers * header.kvHeads };
}

/**
 * The layout of a file from its header and the bytes of {@link kvcLengthsRange} (the frame start of the
 * lengths/positions section and the lengths), for ranged reads. Checks the section tag and that its
 * byte length agrees with the lengths; the lengths themselves are covered by the section CRC, which
 * only a whole read can check.
 *
 * @example
 * ```ts
 * const header = readKvcHeader(await get(0, KVC_HEADER_BYTES));
 * const r = kvcLengthsRange(header);
 * const layout = readKvcLayout(header, await get(r.offset, r.byteLength));
 * ```
 */
export function readKvcLayout(header: KvcHeader, bytes: Uint8Array, source = ".kvc"): KvcLayout {
  const { byteLength } = kvcLengthsRange(header);
  if (bytes.length < byteLength)
    throw kvcError(
      source,
      "lengths/positions",
      `truncated: ${bytes.length} of ${byteLength} bytes`,
    );
  const dv = new DataView(bytes.buffer, bytes.byteOffset, byteLength);
  const declared = readFrameStart(dv, 0, "LPOS", "lengths/positions", source);
  const count = header.layers * header.kvHeads;
  const lengths = new Uint32Array(count);
  for (let i = 0; i < count; i++) lengths[i] = dv.getUint32(12 + 4 * i, true);
  const layout = kvcLayout(header, lengths, source);
  checkDeclaredLength(declared, layout.lengthsPositions, source);
  return layout;
}

/** Checks a frame's tag at `at` and returns its declared body length (a u64, as a number). */
export function readFrameStart(
  dv: DataView,
  at: number,
  tag: string,
  part: KvcSectionSpan["part"],
  source: string,
): number {
  let found = "";
  for (let i = 0; i < 4; i++) found += String.fromCharCode(dv.getUint8(at + i));
  if (found !== tag)
    throw kvcError(
      source,
      part,
      `tag ${JSON.stringify(found)} where ${JSON.stringify(tag)} belongs`,
    );
  const low = dv.getUint32(at + 4, true);
  const high = dv.getUint32(at + 8, true);
  return high * 2 ** 32 + low; // exact up to 2^53; larger values never match a computed length
}

/** `store_invalid` unless a frame's declared body length is the one the layout computes. */
export function checkDeclaredLength(declared: number, span: KvcSectionSpan, source: string): void {
  if (declared !== span.bodyBytes) {
    throw kvcError(
      source,
      span.part,
      `byte length ${declared} does not match the ${span.bodyBytes} that the header and lengths imply`,
    );
  }
}

/**
 * The byte ranges of layer `layer`'s data, to fetch that layer alone. `layer` outside 0 … L−1 is
 * `invalid_argument`.
 *
 * @example
 * ```ts
 * const r = kvcLayerRange(layout, 0);
 * // r.keys: [Σ r.lengths, D] elements; head h starts (r.lengths[0] + … + r.lengths[h−1])·D elements in.
 * ```
 */
export function kvcLayerRange(layout: KvcLayout, layer: number): KvcLayerRange {
  const { layers: L, kvHeads: H, headDim: D, dtype } = layout.header;
  if (!Number.isInteger(layer) || layer < 0 || layer >= L) {
    throw new EpicacheError("invalid_argument", `layer ${layer} is out of range (0 … ${L - 1})`);
  }
  const first = layout.entryOffsets[layer * H];
  const entries = layout.entryOffsets[(layer + 1) * H] - first;
  const e = KVC_ELEMENT_BYTES[dtype];
  const data = (s: KvcSectionSpan): KvcByteRange => ({
    offset: s.bodyOffset + first * D * e,
    byteLength: entries * D * e,
  });
  const scales = (s: KvcSectionSpan | null): KvcByteRange | null =>
    s === null ? null : { offset: s.bodyOffset + 4 * layer * H * D, byteLength: 4 * H * D };
  return {
    layer,
    lengths: layout.lengths.slice(layer * H, (layer + 1) * H),
    positions: {
      offset: layout.lengthsPositions.bodyOffset + 4 * (L * H + first),
      byteLength: 4 * entries,
    },
    keyScales: scales(layout.keyScales),
    keys: data(layout.keys),
    valueScales: scales(layout.valueScales),
    values: data(layout.values),
  };
}

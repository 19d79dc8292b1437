/**
 * The `.kvc` episode KV-cache format: a versioned, checksummed, little-endian file (byte table in
 * kvc-format.ts), written as a stream of chunks and read whole or streamed, with f32, f16 (default) or
 * int8 data; its layout for ranged reads of one layer; and the f16 and CRC-32 helpers it is built on.
 * Errors reading a file are `store_invalid`, naming the part at fault.
 */
export {
  KVC_DTYPES,
  KVC_FRAME_BYTES,
  KVC_HEADER_BYTES,
  KVC_LIMITS,
  KVC_MAGIC,
  KVC_VERSION,
  readKvcHeader,
  type KvcCache,
  type KvcDtype,
  type KvcHeader,
  type KvcPart,
} from "./kvc-format";
export {
  kvcLayerRange,
  kvcLayout,
  kvcLengthsRange,
  readKvcLayout,
  type KvcByteRange,
  type KvcLayerRange,
  type KvcLayout,
  type KvcSectionSpan,
} from "./kvc-layout";
export { encodeKvc, encodeKvcBytes, type EncodeKvcOptions } from "./encode-kvc";
export {
  decodeKvc,
  decodeKvcBytes,
  type DecodeKvcOptions,
  type DecodedKvc,
  type KvcTargets,
} from "./decode-kvc";
export { f16BitsToF32, f32ToF16Bits, roundToF16 } from "./f16";
export { crc32 } from "./crc32";

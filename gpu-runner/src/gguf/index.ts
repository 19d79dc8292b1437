export { openGguf, parseGguf, bufferSource, fileSource, meta, metaOptional } from "./reader";
export type { GgufFile, GgufTensorInfo, GgufValue, ByteSource } from "./reader";
export { dequantize, f16ToF32 } from "./dequant";
export { GGML_TYPES, type GgmlTypeName } from "./ggml-types";

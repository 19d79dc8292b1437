export { writeGguf, quantize, f32ToF16, type MetaEntry, type TensorEntry } from "./gguf-writer";
export { tinyGguf, byteToUnicode, type TinySpec } from "./tiny-model";
export { referenceForward, type ReferenceResult } from "./reference";
export { f16Value } from "./gguf-writer";
export { pulledModel, NEEDS_PULL } from "./pulled";

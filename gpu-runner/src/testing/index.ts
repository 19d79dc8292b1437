export { writeGguf, quantize, f32ToF16, type MetaEntry, type TensorEntry } from "./gguf-writer";
export { tinyGguf, byteToUnicode, TINY_MERGES, CHATML_TEMPLATE, type TinySpec } from "./tiny-model";
export { keptWeights, referenceForward, type ReferenceResult } from "./reference";
export { f16Value } from "./gguf-writer";
export { pulledModel, NEEDS_PULL } from "./pulled";
export {
  writeSafetensors,
  encodeValues,
  roundTo,
  f32ToBf16,
  type SafetensorsEntry,
  type WritableDtype,
} from "./safetensors-writer";
export {
  writeTinyHfCheckpoint,
  tinyHfTokenizerFiles,
  type TinyHfSpec,
  type TinyHfCheckpoint,
} from "./tiny-safetensors";
export { maxRelError } from "./compare";
export { codeOf } from "./code-of";
export { freePort } from "./free-port";
export { runCli, CLI, type CliRun } from "./run-cli";
export { attentionPolicy } from "./attention-policy";

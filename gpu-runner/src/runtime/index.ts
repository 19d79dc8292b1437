export {
  openChatModel,
  sha256File,
  sha256Files,
  type ChatModel,
  type OpenModelOptions,
} from "./load";
export { ANSWER_ROOM, generate, type GenerateOptions, type GeneratedToken } from "./generate";
export { KvCache, type CacheMark, type LayerCache } from "./kv-cache";
export { Decoder, DEFAULT_RUNTIME, type RuntimeOptions, type ForwardResult } from "./decoder";
export { configFromGguf, validateConfig, type LlamaConfig, type RopeScaling } from "./config";
export { configFromHf } from "./hf-config";
export { hfWeights } from "./hf-weights";
export { argmax, seededRandom, sampleWithTemperature } from "./sampling";
export { NUMERICS, type Numerics } from "./decoder-graph";
export { cpuPathOf, hostCpuPath, EMULATED_CPU_PATHS, type CpuPath } from "./cpu-path";
export { repositioner, type Repositioner } from "./reposition";

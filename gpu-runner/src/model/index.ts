export { openChatModel, sha256File, type ChatModel, type OpenModelOptions } from "./load";
export { generate, type GenerateOptions, type GeneratedToken } from "./generate";
export { KvCache, type LayerCache } from "./kv-cache";
export { Decoder, DEFAULT_RUNTIME, type RuntimeOptions, type ForwardResult } from "./decoder";
export { configFromGguf, validateConfig, type LlamaConfig, type RopeScaling } from "./config";
export { argmax, seededRandom, sampleWithTemperature } from "./sampling";

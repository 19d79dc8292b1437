export {
  OnnxEmbedder,
  openEmbedder,
  type EmbedderOptions,
  type EmbedOptions,
} from "./onnx-embedder";
export { SentenceTokenizer, specialFrameOf, type SpecialFrame } from "./sentence-tokenizer";
export { meanPoolNormalized } from "./pooling";

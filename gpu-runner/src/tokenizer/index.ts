export { TextTokenizer, type ChatMessage, type TokenizerInfo } from "./tokenizer";

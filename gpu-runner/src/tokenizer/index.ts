export {
  TextTokenizer,
  type ChatMessage,
  type TokenizerInfo,
  type TokenizerJson,
  type AddedTokenJson,
} from "./tokenizer";
export { readHfTokenizer } from "./hf-tokenizer";
export { preTokenizerFor } from "./pre-tokenizers";

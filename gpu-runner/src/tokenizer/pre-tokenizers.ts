/**
 * llama.cpp's pre-tokenizer names (`tokenizer.ggml.pre`) mapped to the Hugging Face tokenizer.json
 * pre-tokenizers that split text the same way (llama.cpp's `llama-vocab.cpp` lists the regexes).
 */
import { EpicacheError } from "@epicache/shared";

const GPT2_REGEX =
  "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
const LLAMA3_REGEX =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const QWEN2_REGEX =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

const byteLevel = (useRegex: boolean) => ({
  type: "ByteLevel",
  add_prefix_space: false,
  trim_offsets: true,
  use_regex: useRegex,
});
const split = (regex: string) => ({
  type: "Split",
  pattern: { Regex: regex },
  behavior: "Isolated",
  invert: false,
});

/** The tokenizer.json `pre_tokenizer` for a llama.cpp pre-tokenizer name. */
export function preTokenizerFor(pre: string): object {
  switch (pre) {
    case "default":
    case "gpt2":
      return byteLevel(true);
    case "smollm":
    case "starcoder":
    case "refact":
      // llama.cpp: "\p{N}" then the GPT-2 regex, i.e. digits one by one.
      return {
        type: "Sequence",
        pretokenizers: [{ type: "Digits", individual_digits: true }, byteLevel(true)],
      };
    case "llama-bpe":
    case "llama3":
    case "smaug-bpe":
      return { type: "Sequence", pretokenizers: [split(LLAMA3_REGEX), byteLevel(false)] };
    case "qwen2":
      return { type: "Sequence", pretokenizers: [split(QWEN2_REGEX), byteLevel(false)] };
    default:
      throw new EpicacheError(
        "tokenizer_invalid",
        `pre-tokenizer "${pre}" is not supported (gpt2, smollm, llama-bpe and qwen2 are); pass a Hugging Face checkpoint with tokenizer.json instead`,
      );
  }
}

export { GPT2_REGEX };

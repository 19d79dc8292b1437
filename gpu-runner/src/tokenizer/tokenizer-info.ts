/**
 * What a `TextTokenizer` is built from: the parts of a tokenizer.json that
 * @huggingface/tokenizers runs, and the ids around them. GGUF metadata (tokenizer.ts) and Hugging
 * Face checkpoints (hf-tokenizer.ts) are both read into this shape.
 */
/** A token matched whole before BPE runs (a tokenizer.json `added_tokens` entry). */
export interface AddedTokenJson {
  id: number;
  content: string;
  /** A control token: matched in text only when parsing specials, and dropped when decoding unless kept. */
  special: boolean;
  single_word?: boolean;
  lstrip?: boolean;
  rstrip?: boolean;
  normalized?: boolean;
}

/**
 * The parts of a tokenizer.json that @huggingface/tokenizers runs. The post-processor is left out:
 * BOS is added by `TextTokenizer` itself (`addBos`), so that it can be left off where it must.
 */
export interface TokenizerJson {
  /** A BPE model: `vocab` maps token → id, `merges` are "a b" strings or [a, b] pairs. */
  model: {
    type: "BPE";
    vocab: Record<string, number>;
    merges: string[] | Array<[string, string]>;
    [key: string]: unknown;
  };
  added_tokens: AddedTokenJson[];
  normalizer: object | null;
  pre_tokenizer: object | null;
  decoder: object | null;
}

/** What a `TextTokenizer` is built from, whatever the file (GGUF metadata or tokenizer.json). */
export interface TokenizerInfo {
  json: TokenizerJson;
  bosId: number | undefined;
  eosId: number | undefined;
  addBos: boolean;
  chatTemplate: string | undefined;
  /** More ids that end a generation besides EOS and the end-of-turn tokens (generation_config.json's). */
  extraStopIds?: readonly number[];
}

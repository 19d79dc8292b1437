/**
 * Byte-level BPE tokenizer built from GGUF metadata (or a Hugging Face tokenizer.json) and run by
 * @huggingface/tokenizers. BOS follows the file (`tokenizer.ggml.add_bos_token`), as llama.cpp does.
 *
 * Special tokens are parsed only where we put them: chat prompts render the template around
 * placeholders, so a user who writes "<|im_end|>" gets the text, not the control token. (llama.cpp's
 * own chat path parses specials in message text too; for ordinary text the two agree, see the tests.)
 */
import { Tokenizer } from "@huggingface/tokenizers";
import { Template } from "@huggingface/jinja";
import { EpicacheError } from "@epicache/shared";
import { meta, metaOptional, type GgufFile } from "../gguf";
import { preTokenizerFor } from "./pre-tokenizers";

/** llama.cpp token types (`tokenizer.ggml.token_type`). */
const TOKEN_TYPE = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

export interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

export interface TokenizerInfo {
  vocab: string[];
  tokenTypes: number[];
  merges: string[];
  pre: string;
  bosId: number | undefined;
  eosId: number | undefined;
  addBos: boolean;
  chatTemplate: string | undefined;
}

export class TextTokenizer {
  /** Splits on every special token (control and user-defined). */
  private readonly withSpecials: Tokenizer;
  /** Splits only on user-defined tokens: control tokens in text stay text, as llama.cpp's parse_special=false. */
  private readonly plain: Tokenizer;
  readonly vocabSize: number;
  readonly bosId: number | undefined;
  readonly eosId: number | undefined;
  readonly addBos: boolean;
  /** Tokens that end a generation: EOS, and the chat template's end-of-turn token. */
  readonly stopIds: ReadonlySet<number>;
  private readonly template: Template | undefined;
  private readonly specialIds: ReadonlySet<number>;
  private readonly ids: Map<string, number>;

  constructor(readonly info: TokenizerInfo) {
    const { vocab, tokenTypes, merges, pre } = info;
    if (vocab.length === 0) throw new EpicacheError("tokenizer_invalid", "the tokenizer has an empty vocabulary");
    if (tokenTypes.length !== vocab.length) {
      throw new EpicacheError("tokenizer_invalid", `token types (${tokenTypes.length}) and tokens (${vocab.length}) differ in count`);
    }
    this.vocabSize = vocab.length;
    this.ids = new Map(vocab.map((t, i) => [t, i]));
    const model = {
      type: "BPE",
      vocab: Object.fromEntries(this.ids),
      merges,
      dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: false, byte_fallback: false, ignore_merges: false,
    };
    const added = (types: number[]) =>
      vocab.flatMap((content, id) =>
        types.includes(tokenTypes[id])
          ? [{ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: tokenTypes[id] === TOKEN_TYPE.CONTROL }]
          : [],
      );
    const json = (addedTokens: object[]) => ({
      version: "1.0", truncation: null, padding: null, added_tokens: addedTokens, normalizer: null,
      pre_tokenizer: preTokenizerFor(pre), post_processor: null,
      decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true }, model,
    });
    const config = { clean_up_tokenization_spaces: false, add_bos_token: false, add_eos_token: false };
    this.withSpecials = new Tokenizer(json(added([TOKEN_TYPE.CONTROL, TOKEN_TYPE.USER_DEFINED])), config);
    this.plain = new Tokenizer(json(added([TOKEN_TYPE.USER_DEFINED])), config);
    this.specialIds = new Set(tokenTypes.flatMap((t, i) => (t === TOKEN_TYPE.CONTROL ? [i] : [])));
    this.bosId = info.bosId;
    this.eosId = info.eosId;
    this.addBos = info.addBos && info.bosId !== undefined;
    const stops = new Set<number>();
    if (info.eosId !== undefined) stops.add(info.eosId);
    for (const name of ["<|im_end|>", "<|eot_id|>", "<|end_of_text|>", "<|endoftext|>", "<end_of_turn>"]) {
      const id = this.ids.get(name);
      if (id !== undefined && this.specialIds.has(id)) stops.add(id);
    }
    this.stopIds = stops;
    this.template = info.chatTemplate ? new Template(info.chatTemplate) : undefined;
  }

  /** Reads the tokenizer of a GGUF file (`tokenizer.ggml.*`). Only the BPE ("gpt2") model is supported. */
  static fromGguf(file: Pick<GgufFile, "metadata">): TextTokenizer {
    const model = meta(file, "tokenizer.ggml.model", "string");
    if (model !== "gpt2") {
      throw new EpicacheError("tokenizer_invalid", `tokenizer model "${model}" is not supported (byte-level BPE, "gpt2", is)`);
    }
    const vocab = meta(file, "tokenizer.ggml.tokens", "array").map(String);
    const types = metaOptional(file, "tokenizer.ggml.token_type");
    const bos = metaOptional(file, "tokenizer.ggml.bos_token_id");
    const eos = metaOptional(file, "tokenizer.ggml.eos_token_id");
    const addBos = metaOptional(file, "tokenizer.ggml.add_bos_token");
    const template = metaOptional(file, "tokenizer.chat_template");
    return new TextTokenizer({
      vocab,
      tokenTypes: Array.isArray(types) ? types.map(Number) : vocab.map(() => TOKEN_TYPE.NORMAL),
      merges: meta(file, "tokenizer.ggml.merges", "array").map(String),
      pre: String(metaOptional(file, "tokenizer.ggml.pre") ?? "default"),
      bosId: bos === undefined ? undefined : Number(bos),
      eosId: eos === undefined ? undefined : Number(eos),
      // llama.cpp's default for BPE vocabularies is to add BOS when the key is absent.
      addBos: addBos === undefined ? true : addBos === true,
      chatTemplate: typeof template === "string" ? template : undefined,
    });
  }

  /**
   * Text → token ids, without BOS. `parseSpecial` matches control tokens written in the text
   * (llama.cpp's `parse_special`); off by default, so user text cannot forge them.
   */
  encode(text: string, opts: { parseSpecial?: boolean } = {}): number[] {
    if (text.length === 0) return [];
    return (opts.parseSpecial ? this.withSpecials : this.plain).encode(text, { add_special_tokens: false }).ids;
  }

  /** A raw prompt as the model sees it: BOS when the file asks for it, then the text. */
  encodePrompt(text: string, opts: { parseSpecial?: boolean } = {}): number[] {
    return [...(this.addBos && this.bosId !== undefined ? [this.bosId] : []), ...this.encode(text, opts)];
  }

  /** Token ids → text. Control tokens are dropped unless `keepSpecial`. */
  decode(ids: readonly number[], opts: { keepSpecial?: boolean } = {}): string {
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new EpicacheError("invalid_argument", `token id ${id} is outside the vocabulary (0..${this.vocabSize - 1})`);
      }
    }
    // @huggingface/tokenizers rejects an empty list; nothing decodes to nothing.
    if (ids.length === 0) return "";
    return this.withSpecials.decode([...ids], { skip_special_tokens: !opts.keepSpecial, clean_up_tokenization_spaces: false });
  }

  tokenId(text: string): number | undefined {
    return this.ids.get(text);
  }

  get hasChatTemplate(): boolean {
    return this.template !== undefined;
  }

  /**
   * Renders the chat template (with the assistant header when `addGenerationPrompt`) and tokenizes it:
   * the template's own text with special tokens parsed, the message contents without.
   */
  encodeChat(messages: readonly ChatMessage[], opts: { addGenerationPrompt?: boolean } = {}): number[] {
    if (!this.template) {
      throw new EpicacheError("tokenizer_invalid", "this model has no chat template (tokenizer.chat_template)");
    }
    // Placeholders in a private-use range that no real text uses; the template only concatenates them.
    const mark = (i: number) => `\uE000${i}\uE001`;
    const rendered = this.template.render({
      messages: messages.map((m, i) => ({ role: m.role, content: mark(i) })),
      add_generation_prompt: opts.addGenerationPrompt ?? true,
      bos_token: this.bosId !== undefined ? this.info.vocab[this.bosId] : "",
      eos_token: this.eosId !== undefined ? this.info.vocab[this.eosId] : "",
    });
    const ids: number[] = [];
    // Split keeps the captured message indices at odd positions.
    const parts = rendered.split(/\uE000(\d+)\uE001/);
    let text = "";
    const flushTemplate = () => {
      ids.push(...this.encode(text, { parseSpecial: true }));
      text = "";
    };
    for (let i = 0; i < parts.length; i++) {
      if (i % 2 === 0) {
        text += parts[i];
        continue;
      }
      const content = messages[Number(parts[i])].content;
      flushTemplate();
      ids.push(...this.encode(content));
    }
    flushTemplate();
    return this.addBos && this.bosId !== undefined && ids[0] !== this.bosId ? [this.bosId, ...ids] : ids;
  }

  /** The chat template rendered as text (for display and for reference runtimes). */
  renderChat(messages: readonly ChatMessage[], opts: { addGenerationPrompt?: boolean } = {}): string {
    if (!this.template) throw new EpicacheError("tokenizer_invalid", "this model has no chat template");
    return this.template.render({
      messages, add_generation_prompt: opts.addGenerationPrompt ?? true,
      bos_token: this.bosId !== undefined ? this.info.vocab[this.bosId] : "",
      eos_token: this.eosId !== undefined ? this.info.vocab[this.eosId] : "",
    });
  }

  /** A decoder that turns a stream of ids into text pieces, holding back incomplete UTF-8. */
  streamDecoder(): (id: number) => string {
    const ids: number[] = [];
    let emitted = 0;
    return (id) => {
      ids.push(id);
      const text = this.decode(ids);
      // A trailing U+FFFD means a multi-byte character is still incomplete: wait for more bytes.
      if (text.endsWith("\uFFFD")) return "";
      const piece = text.slice(emitted);
      emitted = text.length;
      return piece;
    };
  }
}

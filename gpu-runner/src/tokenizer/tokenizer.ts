/**
 * Byte-level BPE tokenizer built from GGUF metadata or a Hugging Face tokenizer.json, and run by
 * @huggingface/tokenizers. BOS follows the file: `tokenizer.ggml.add_bos_token` as llama.cpp reads
 * it, or the tokenizer.json post-processor (hf-tokenizer.ts).
 *
 * Special tokens are parsed only where we put them: in chat prompts, control-token text inside a
 * message is kept out of the parse, so a user who writes "<|im_end|>" gets the text, not the control
 * token. (llama.cpp's and transformers' chat paths parse specials in message text too; for ordinary
 * text the three agree, see the tests.)
 */
import { Tokenizer } from "@huggingface/tokenizers";
import { Template } from "@huggingface/jinja";
import { EpicacheError } from "@epicache/shared";
import { meta, metaOptional, type GgufFile } from "../gguf";
import { readHfTokenizer } from "./hf-tokenizer";
import { preTokenizerFor } from "./pre-tokenizers";
import type { AddedTokenJson, TokenizerInfo, TokenizerJson } from "./tokenizer-info";

export type { AddedTokenJson, TokenizerInfo, TokenizerJson } from "./tokenizer-info";

/** llama.cpp token types (`tokenizer.ggml.token_type`). */
const TOKEN_TYPE = {
  NORMAL: 1,
  UNKNOWN: 2,
  CONTROL: 3,
  USER_DEFINED: 4,
  UNUSED: 5,
  BYTE: 6,
} as const;

/** Names of end-of-turn tokens across families: each stops a generation when the vocabulary has it as a special token. */
const END_OF_TURN = [
  "<|im_end|>",
  "<|eot_id|>",
  "<|eom_id|>",
  "<|end_of_text|>",
  "<|endoftext|>",
  "<end_of_turn>",
];

export interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

export class TextTokenizer {
  /** Splits on every added token (control and user-defined). */
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
  /** Matches the text of any control token, and the marker character encodeChat uses. */
  private readonly controlText: RegExp;
  /** id → token text, added tokens included. */
  private readonly vocab: string[];
  private readonly ids: Map<string, number>;

  constructor(readonly info: TokenizerInfo) {
    const { json } = info;
    this.ids = new Map(Object.entries(json.model.vocab));
    for (const t of json.added_tokens) this.ids.set(t.content, t.id);
    this.vocab = [];
    for (const [token, id] of this.ids) {
      if (!Number.isInteger(id) || id < 0 || id >= 1 << 24)
        throw new EpicacheError("tokenizer_invalid", `token ${JSON.stringify(token)} has id ${id}`);
      this.vocab[id] = token;
    }
    if (this.vocab.length === 0)
      throw new EpicacheError("tokenizer_invalid", "the tokenizer has an empty vocabulary");
    this.vocabSize = this.vocab.length;
    const build = (added: AddedTokenJson[]) =>
      new Tokenizer(
        {
          version: "1.0",
          truncation: null,
          padding: null,
          ...json,
          added_tokens: added,
          post_processor: null,
        },
        { clean_up_tokenization_spaces: false, add_bos_token: false, add_eos_token: false },
      );
    this.withSpecials = build(json.added_tokens);
    this.plain = build(json.added_tokens.filter((t) => !t.special));
    const specialIds = new Set(json.added_tokens.flatMap((t) => (t.special ? [t.id] : [])));
    const control = json.added_tokens
      .flatMap((t) => (t.special && t.content.length > 0 ? [t.content] : []))
      .sort((a, b) => b.length - a.length);
    this.controlText = new RegExp(
      [...control, "\uE000"].map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|"),
      "g",
    );
    this.bosId = info.bosId;
    this.eosId = info.eosId;
    this.addBos = info.addBos && info.bosId !== undefined;
    const stops = new Set<number>(info.extraStopIds ?? []);
    if (info.eosId !== undefined) stops.add(info.eosId);
    for (const name of END_OF_TURN) {
      const id = this.ids.get(name);
      if (id !== undefined && specialIds.has(id)) stops.add(id);
    }
    this.stopIds = stops;
    this.template = info.chatTemplate ? new Template(info.chatTemplate) : undefined;
  }

  /** Reads the tokenizer of a GGUF file (`tokenizer.ggml.*`). Only the BPE ("gpt2") model is supported. */
  static fromGguf(file: Pick<GgufFile, "metadata">): TextTokenizer {
    const model = meta(file, "tokenizer.ggml.model", "string");
    if (model !== "gpt2") {
      throw new EpicacheError(
        "tokenizer_invalid",
        `tokenizer model "${model}" is not supported (byte-level BPE, "gpt2", is)`,
      );
    }
    const vocab = meta(file, "tokenizer.ggml.tokens", "array").map(String);
    const rawTypes = metaOptional(file, "tokenizer.ggml.token_type");
    const types = Array.isArray(rawTypes)
      ? rawTypes.map(Number)
      : vocab.map(() => TOKEN_TYPE.NORMAL);
    if (types.length !== vocab.length) {
      throw new EpicacheError(
        "tokenizer_invalid",
        `token types (${types.length}) and tokens (${vocab.length}) differ in count`,
      );
    }
    const bos = metaOptional(file, "tokenizer.ggml.bos_token_id");
    const eos = metaOptional(file, "tokenizer.ggml.eos_token_id");
    const addBos = metaOptional(file, "tokenizer.ggml.add_bos_token");
    const template = metaOptional(file, "tokenizer.chat_template");
    const json: TokenizerJson = {
      model: {
        type: "BPE",
        vocab: Object.fromEntries(vocab.map((t, i) => [t, i])),
        merges: meta(file, "tokenizer.ggml.merges", "array").map(String),
        dropout: null,
        unk_token: null,
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
        fuse_unk: false,
        byte_fallback: false,
        ignore_merges: false,
      },
      // Control and user-defined tokens are matched whole; only control ones are special.
      added_tokens: vocab.flatMap((content, id) =>
        types[id] === TOKEN_TYPE.CONTROL || types[id] === TOKEN_TYPE.USER_DEFINED
          ? [
              {
                id,
                content,
                single_word: false,
                lstrip: false,
                rstrip: false,
                normalized: false,
                special: types[id] === TOKEN_TYPE.CONTROL,
              },
            ]
          : [],
      ),
      normalizer: null,
      pre_tokenizer: preTokenizerFor(String(metaOptional(file, "tokenizer.ggml.pre") ?? "default")),
      decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    };
    return new TextTokenizer({
      json,
      bosId: bos === undefined ? undefined : Number(bos),
      eosId: eos === undefined ? undefined : Number(eos),
      // llama.cpp's default for BPE vocabularies is to add BOS when the key is absent.
      addBos: addBos === undefined ? true : addBos === true,
      chatTemplate: typeof template === "string" ? template : undefined,
    });
  }

  /**
   * Reads the tokenizer of a Hugging Face checkpoint directory: `tokenizer.json`, with the chat
   * template and special tokens of `tokenizer_config.json` (see hf-tokenizer.ts).
   */
  static fromHf(dir: string): TextTokenizer {
    return new TextTokenizer(readHfTokenizer(dir));
  }

  /**
   * Text → token ids, without BOS. `parseSpecial` matches control tokens written in the text
   * (llama.cpp's `parse_special`); off by default, so user text cannot forge them.
   */
  encode(text: string, opts: { parseSpecial?: boolean } = {}): number[] {
    if (text.length === 0) return [];
    return (opts.parseSpecial ? this.withSpecials : this.plain).encode(text, {
      add_special_tokens: false,
    }).ids;
  }

  /** A raw prompt as the model sees it: BOS when the file asks for it, then the text. */
  encodePrompt(text: string, opts: { parseSpecial?: boolean } = {}): number[] {
    return [
      ...(this.addBos && this.bosId !== undefined ? [this.bosId] : []),
      ...this.encode(text, opts),
    ];
  }

  /** Token ids → text. Control tokens are dropped unless `keepSpecial`. */
  decode(ids: readonly number[], opts: { keepSpecial?: boolean } = {}): string {
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new EpicacheError(
          "invalid_argument",
          `token id ${id} is outside the vocabulary (0..${this.vocabSize - 1})`,
        );
      }
    }
    // @huggingface/tokenizers rejects an empty list; nothing decodes to nothing.
    if (ids.length === 0) return "";
    return this.withSpecials.decode([...ids], {
      skip_special_tokens: !opts.keepSpecial,
      clean_up_tokenization_spaces: false,
    });
  }

  tokenId(text: string): number | undefined {
    return this.ids.get(text);
  }

  get hasChatTemplate(): boolean {
    return this.template !== undefined;
  }

  /**
   * Renders the chat template (with the assistant header when `addGenerationPrompt`) and tokenizes it
   * with special tokens parsed, except control-token text that came from a message: that stays text.
   */
  encodeChat(
    messages: readonly ChatMessage[],
    opts: { addGenerationPrompt?: boolean } = {},
  ): number[] {
    if (!this.template) {
      throw new EpicacheError(
        "tokenizer_invalid",
        "this model has no chat template (tokenizer.chat_template)",
      );
    }
    // The template sees the real contents (templates trim them, split off reasoning, …), except that
    // control-token text inside them is swapped for a private-use marker `\uE000k\uE001`, and so is
    // the marker character itself. The rendered text is then tokenized with specials parsed, each
    // marker as the plain text it stands for: user text cannot become a control token.
    const hidden: string[] = [];
    const shield = (content: string) =>
      content.replace(this.controlText, (text) => `\uE000${hidden.push(text) - 1}\uE001`);
    const rendered = this.render(
      this.template,
      messages.map((m) => ({ role: m.role, content: shield(m.content) })),
      opts,
    );
    const ids: number[] = [];
    // Split keeps the captured marker indices at odd positions.
    const parts = rendered.split(/\uE000(\d+)\uE001/);
    for (let i = 0; i < parts.length; i++) {
      ids.push(
        ...(i % 2 === 0
          ? this.encode(parts[i], { parseSpecial: true })
          : this.encode(hidden[Number(parts[i])])),
      );
    }
    return this.addBos && this.bosId !== undefined && ids[0] !== this.bosId
      ? [this.bosId, ...ids]
      : ids;
  }

  /** The chat template rendered as text (for display and for reference runtimes). */
  renderChat(
    messages: readonly ChatMessage[],
    opts: { addGenerationPrompt?: boolean } = {},
  ): string {
    if (!this.template)
      throw new EpicacheError("tokenizer_invalid", "this model has no chat template");
    return this.render(this.template, messages, opts);
  }

  private render(
    template: Template,
    messages: readonly ChatMessage[],
    opts: { addGenerationPrompt?: boolean },
  ): string {
    return template.render({
      messages,
      add_generation_prompt: opts.addGenerationPrompt ?? true,
      bos_token: this.bosId !== undefined ? this.vocab[this.bosId] : "",
      eos_token: this.eosId !== undefined ? this.vocab[this.eosId] : "",
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

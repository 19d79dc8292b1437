/**
 * The tokenizer of a sentence-embedding model (BERT-style WordPiece: all-MiniLM-L6-v2, bge-small),
 * read from its tokenizer.json and run by @huggingface/tokenizers.
 *
 * The file's own `truncation` and `padding` are ignored on purpose: MiniLM's export pins both to 128
 * (fixed padding), while the model was trained with 256 word pieces and a batch only needs padding to
 * its own longest text. Here a text becomes exactly its tokens plus the post-processor's special
 * tokens (`[CLS] … [SEP]`), cut to `maxLength` in total; padding and the attention mask are the
 * embedder's job.
 */
import { readFileSync } from "node:fs";
import { Tokenizer } from "@huggingface/tokenizers";
import { EpicacheError } from "@epicache/shared";

type Json = Record<string, unknown>;

const invalid = (message: string) => new EpicacheError("tokenizer_invalid", message);

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The special-token ids a post-processor puts around a single sequence. */
export interface SpecialFrame {
  prefix: number[];
  suffix: number[];
}

/**
 * The ids around a single sequence in a tokenizer.json post-processor: `TemplateProcessing`
 * (`[CLS] $A [SEP]`), `BertProcessing`, `RobertaProcessing`, or none (no specials).
 */
export function specialFrameOf(pp: unknown): SpecialFrame {
  if (pp === null || pp === undefined) return { prefix: [], suffix: [] };
  if (!isObject(pp)) throw invalid("post_processor is not an object");
  switch (pp.type) {
    case "TemplateProcessing": {
      const frame: SpecialFrame = { prefix: [], suffix: [] };
      let seenSequence = false;
      const single: unknown[] = Array.isArray(pp.single) ? pp.single : [];
      for (const piece of single) {
        if (isObject(piece) && isObject(piece.Sequence)) {
          seenSequence = true;
          continue;
        }
        const name =
          isObject(piece) && isObject(piece.SpecialToken) ? piece.SpecialToken.id : undefined;
        const entry =
          isObject(pp.special_tokens) && typeof name === "string"
            ? pp.special_tokens[name]
            : undefined;
        const ids: unknown = isObject(entry) ? entry.ids : undefined;
        if (!Array.isArray(ids) || !ids.every(Number.isInteger))
          throw invalid(`post_processor: template piece ${JSON.stringify(piece)} has no ids`);
        (seenSequence ? frame.suffix : frame.prefix).push(...(ids as number[]));
      }
      if (!seenSequence) throw invalid("post_processor: the single-sequence template has no $A");
      return frame;
    }
    case "BertProcessing":
    case "RobertaProcessing": {
      const id = (pair: unknown, name: string): number => {
        const v: unknown = Array.isArray(pair) ? pair[1] : undefined;
        if (!Number.isInteger(v)) throw invalid(`post_processor: ${name} has no id`);
        return v as number;
      };
      return { prefix: [id(pp.cls, "cls")], suffix: [id(pp.sep, "sep")] };
    }
    default:
      throw invalid(
        `post_processor ${JSON.stringify(pp.type)} is not supported for embedders (TemplateProcessing, BertProcessing and RobertaProcessing are)`,
      );
  }
}

/** Plain whitespace that every BERT normalizer and pre-tokenizer splits on: a safe place to cut text. */
const CUT = /[ \t\n\r]/;

/**
 * Text → ids for a sentence embedder: the model's tokens framed by its special tokens, cut to a
 * maximum length. No padding (see the module comment).
 *
 * @example
 * ```ts
 * const t = SentenceTokenizer.fromFile(".epicache/models/all-minilm-l6-v2-int8/tokenizer.json");
 * t.encode("hello", 256); // [101, 7592, 102]  ([CLS] hello [SEP])
 * ```
 */
export class SentenceTokenizer {
  private readonly tokenizer: Tokenizer;
  readonly frame: SpecialFrame;
  /** The id that fills padded positions (the file's padding `pad_id`, else `[PAD]`, else 0). */
  readonly padId: number;

  private constructor(json: Json) {
    const { padding, post_processor: pp } = json;
    this.frame = specialFrameOf(pp);
    try {
      this.tokenizer = new Tokenizer(
        { ...json, truncation: null, padding: null, post_processor: null },
        { clean_up_tokenization_spaces: false },
      );
    } catch (e) {
      throw invalid(`@huggingface/tokenizers cannot build this tokenizer: ${(e as Error).message}`);
    }
    const padFromFile =
      isObject(padding) && Number.isInteger(padding.pad_id)
        ? (padding.pad_id as number)
        : undefined;
    this.padId = padFromFile ?? this.tokenizer.token_to_id("[PAD]") ?? 0;
  }

  /** Reads a tokenizer.json file. */
  static fromFile(path: string): SentenceTokenizer {
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(path, "utf8"));
    } catch (e) {
      throw invalid(`cannot read ${path}: ${(e as Error).message}`);
    }
    if (!isObject(json) || !isObject(json.model))
      throw invalid(`${path} is not a tokenizer.json (no model)`);
    return new SentenceTokenizer(json);
  }

  /**
   * The ids of `text` with the special tokens, at most `maxLength` of them: the text's tokens are cut
   * at the end (as Hugging Face's truncation of a single sequence), the specials are always kept.
   */
  encode(text: string, maxLength: number): number[] {
    const budget = maxLength - this.frame.prefix.length - this.frame.suffix.length;
    if (!Number.isInteger(budget) || budget < 1)
      throw new EpicacheError(
        "invalid_argument",
        `maxLength ${maxLength} leaves no room for text between the special tokens`,
      );
    const ids = this.leadingTokens(text, budget);
    return [...this.frame.prefix, ...ids.slice(0, budget), ...this.frame.suffix];
  }

  /**
   * At least the first `budget` tokens of `text` (or all of them). A long text is tokenized by
   * growing prefixes cut at whitespace: words never span whitespace, so a prefix's tokens are exactly
   * the leading tokens of the whole text, and a 100 kB message costs about what its kept part does.
   */
  private leadingTokens(text: string, budget: number): number[] {
    // Typical English is 4–5 characters per word piece; start with margin and double.
    for (let chars = budget * 8; chars < text.length; chars *= 2) {
      let cut = chars;
      while (cut < text.length && !CUT.test(text[cut])) cut++;
      if (cut >= text.length) break;
      const ids = this.tokenize(text.slice(0, cut));
      if (ids.length >= budget) return ids;
    }
    return this.tokenize(text);
  }

  private tokenize(text: string): number[] {
    return this.tokenizer.encode(text, { add_special_tokens: false }).ids;
  }
}

/**
 * The tokenizer of a Hugging Face checkpoint directory, read into a {@link TokenizerInfo}:
 * - `tokenizer.json`: the BPE model, normalizer, pre-tokenizer, decoder and added tokens. Its
 *   post-processor only tells whether a prompt starts with BOS (and which token that is), as
 *   `tokenizer(text)` would add it;
 * - `tokenizer_config.json` (optional): `chat_template` (a string, or a list of named templates
 *   where "default" is used), `bos_token` and `eos_token`; `chat_template.jinja` (newer exports)
 *   takes precedence over its template;
 * - `generation_config.json` and `config.json` (optional): their `eos_token_id` (a number or a
 *   list, e.g. Llama 3's end-of-text, end-of-message and end-of-turn) also stop a generation.
 *   When config.json's `vocab_size` exceeds the tokenizer's (Qwen2.5 pads its embedding to 151936
 *   rows for 151665 tokens), the vocabulary is padded with special `[PAD{id}]` tokens, as llama.cpp's
 *   converter does, so every id the model can produce decodes (to nothing).
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { EpicacheError } from "@epicache/shared";
import type { AddedTokenJson, TokenizerInfo, TokenizerJson } from "./tokenizer-info";

type Json = Record<string, unknown>;

const invalid = (message: string) => new EpicacheError("tokenizer_invalid", message);

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function readJson(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw invalid(`cannot read ${path}: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw invalid(`${path} is not valid JSON: ${(e as Error).message}`);
  }
}

function readOptionalJson(path: string): Json {
  if (!existsSync(path)) return {};
  const json = readJson(path);
  if (!isObject(json)) throw invalid(`${path} is not a JSON object`);
  return json;
}

/** Checks the parts of tokenizer.json we hand to @huggingface/tokenizers. */
function tokenizerJson(path: string): { json: TokenizerJson; postProcessor: unknown } {
  const raw = readJson(path);
  if (!isObject(raw)) throw invalid(`${path} is not a JSON object`);
  const model = raw.model;
  if (!isObject(model) || model.type !== "BPE") {
    throw invalid(
      `${path}: tokenizer model ${JSON.stringify(isObject(model) ? model.type : model)} is not supported (BPE is)`,
    );
  }
  if (!isObject(model.vocab) || !Object.values(model.vocab).every(Number.isInteger))
    throw invalid(`${path}: model.vocab is not a map of token ids`);
  if (!Array.isArray(model.merges)) throw invalid(`${path}: model.merges is not a list`);
  const added = raw.added_tokens ?? [];
  if (!Array.isArray(added)) throw invalid(`${path}: added_tokens is not a list`);
  const addedTokens: AddedTokenJson[] = added.map((t: unknown, i) => {
    if (!isObject(t) || !Number.isInteger(t.id) || typeof t.content !== "string")
      throw invalid(`${path}: added_tokens[${i}] needs an integer id and a content string`);
    return { ...t, id: t.id as number, content: t.content, special: t.special === true };
  });
  const part = (key: string): object | null => {
    const v = raw[key] ?? null;
    if (v !== null && !isObject(v)) throw invalid(`${path}: ${key} is not an object`);
    return v;
  };
  return {
    json: {
      model: {
        ...model,
        type: "BPE",
        vocab: model.vocab as Record<string, number>,
        merges: model.merges as string[] | Array<[string, string]>,
      },
      added_tokens: addedTokens,
      normalizer: part("normalizer"),
      pre_tokenizer: part("pre_tokenizer"),
      decoder: part("decoder"),
    },
    postProcessor: raw.post_processor ?? null,
  };
}

/** The token a post-processor puts before a single sequence, if any: that is BOS. */
export function bosOfPostProcessor(pp: unknown): { content: string; id: number } | undefined {
  if (!isObject(pp)) return undefined;
  switch (pp.type) {
    case "Sequence":
      for (const p of Array.isArray(pp.processors) ? pp.processors : []) {
        const bos = bosOfPostProcessor(p);
        if (bos) return bos;
      }
      return undefined;
    case "TemplateProcessing": {
      const first: unknown = Array.isArray(pp.single) ? pp.single[0] : undefined;
      if (!isObject(first) || !isObject(first.SpecialToken)) return undefined;
      const name = first.SpecialToken.id;
      const special =
        isObject(pp.special_tokens) && typeof name === "string"
          ? pp.special_tokens[name]
          : undefined;
      const id: unknown =
        isObject(special) && Array.isArray(special.ids) ? special.ids[0] : undefined;
      if (typeof name !== "string" || !Number.isInteger(id))
        throw invalid(`post_processor: template token ${JSON.stringify(name)} has no id`);
      return { content: name, id: id as number };
    }
    case "BertProcessing":
    case "RobertaProcessing": {
      const [content, id] = Array.isArray(pp.cls) ? pp.cls : [];
      return typeof content === "string" && Number.isInteger(id)
        ? { content, id: id as number }
        : undefined;
    }
    default:
      return undefined;
  }
}

/** A special token of tokenizer_config.json: a string, or an added-token object with `content`. */
function tokenText(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (isObject(v) && typeof v.content === "string") return v.content;
  return undefined;
}

function chatTemplateOf(dir: string, config: Json): string | undefined {
  const file = join(dir, "chat_template.jinja");
  if (existsSync(file)) return readFileSync(file, "utf8");
  const t = config.chat_template;
  if (typeof t === "string") return t;
  if (Array.isArray(t)) {
    const named = t.find((x: unknown) => isObject(x) && x.name === "default");
    return isObject(named) && typeof named.template === "string" ? named.template : undefined;
  }
  return undefined;
}

function eosIdsOf(json: Json): number[] {
  const v = json.eos_token_id;
  const ids = Array.isArray(v) ? v : [v];
  return ids.filter((x): x is number => Number.isInteger(x));
}

/** Reads a checkpoint directory's tokenizer files. */
export function readHfTokenizer(dir: string): TokenizerInfo {
  const path = join(dir, "tokenizer.json");
  if (!existsSync(path))
    throw invalid(`${dir} has no tokenizer.json (only tokenizer.json tokenizers are supported)`);
  const { json, postProcessor } = tokenizerJson(path);
  const config = readOptionalJson(join(dir, "tokenizer_config.json"));
  const idOf = (text: string | undefined): number | undefined => {
    if (text === undefined) return undefined;
    return (
      json.added_tokens.find((t) => t.content === text)?.id ??
      (Object.hasOwn(json.model.vocab, text) ? json.model.vocab[text] : undefined)
    );
  };
  const modelConfig = readOptionalJson(join(dir, "config.json"));
  let tokens = 0; // one past the largest id (a loop: real vocabularies are too long to spread)
  for (const id of Object.values(json.model.vocab)) tokens = Math.max(tokens, id + 1);
  for (const t of json.added_tokens) tokens = Math.max(tokens, t.id + 1);
  const modelVocab =
    typeof modelConfig.vocab_size === "number" && Number.isSafeInteger(modelConfig.vocab_size)
      ? modelConfig.vocab_size
      : 0;
  for (let id = tokens; id < Math.min(modelVocab, 1 << 24); id++)
    json.added_tokens.push({ id, content: `[PAD${id}]`, special: true });
  const bos = bosOfPostProcessor(postProcessor);
  const bosText = bos?.content ?? tokenText(config.bos_token);
  const eosText = tokenText(config.eos_token);
  const eosId = idOf(eosText);
  if (eosText !== undefined && eosId === undefined)
    throw invalid(
      `tokenizer_config.json: eos_token ${JSON.stringify(eosText)} is not in the vocabulary`,
    );
  return {
    json,
    bosId: bos?.id ?? idOf(bosText),
    eosId,
    addBos: bos !== undefined,
    chatTemplate: chatTemplateOf(dir, config),
    extraStopIds: [
      ...eosIdsOf(readOptionalJson(join(dir, "generation_config.json"))),
      ...eosIdsOf(modelConfig),
    ],
  };
}

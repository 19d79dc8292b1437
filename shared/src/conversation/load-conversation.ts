import { EpicacheError } from "../errors";
import type { LoadedConversation } from "./conversation";
import { loadJsonl } from "./jsonl";
import { loadLocomo } from "./locomo";
import { stripBom } from "./parse-json";
import { loadRealtalk } from "./realtalk";

/**
 * The conversation file formats the loaders read.
 *
 * @example
 * ```ts
 * CONVERSATION_FORMATS.join(", "); // "locomo, realtalk, jsonl"
 * ```
 */
export const CONVERSATION_FORMATS = ["locomo", "realtalk", "jsonl"] as const;

/**
 * One of {@link CONVERSATION_FORMATS}.
 *
 * @example
 * ```ts
 * const format: ConversationFormat = detectConversationFormat(text); // "locomo" | "realtalk" | "jsonl"
 * ```
 */
export type ConversationFormat = (typeof CONVERSATION_FORMATS)[number];

/**
 * Options of {@link loadConversation}.
 *
 * @example
 * ```ts
 * loadConversation(text, { format: "locomo", sampleId: "conv-26" });
 * ```
 */
export interface LoadConversationOptions {
  /** The format; default {@link detectConversationFormat}. */
  readonly format?: ConversationFormat;
  /** LoCoMo only: the `sample_id` to load; default the first. */
  readonly sampleId?: string;
  /** REALTALK and JSONL: the conversation id (LoCoMo uses the `sample_id`). */
  readonly id?: string;
}

/**
 * Tells the format of a conversation file from its text: a JSON array, or an object with a
 * `conversation` field, is LoCoMo; an object with `name` or `session_N` fields is REALTALK; anything
 * else whose first non-blank line is a JSON object with `speaker` is JSONL. Otherwise a
 * `conversation_invalid` error.
 *
 * @example
 * ```ts
 * detectConversationFormat('[{"sample_id": "conv-26", "conversation": {}}]'); // "locomo"
 * detectConversationFormat('{"speaker": "Ann", "text": "Hi"}\n{"speaker": "Bo", "text": "Yo"}'); // "jsonl"
 * ```
 */
export function detectConversationFormat(text: string): ConversationFormat {
  return detect(text).format;
}

/** The format, and the parsed document when the whole text is one JSON value (so it is parsed once). */
function detect(text: string): { format: ConversationFormat; parsed?: unknown } {
  const body = stripBom(text).trim();
  let whole: unknown;
  try {
    whole = JSON.parse(body);
  } catch {
    whole = undefined; // several JSON lines, or broken JSON: decided by the first line below
  }
  if (Array.isArray(whole)) return { format: "locomo", parsed: whole };
  if (isObject(whole)) {
    if ("conversation" in whole) return { format: "locomo", parsed: whole };
    if ("name" in whole || Object.keys(whole).some((key) => /^session_\d+$/.test(key))) {
      return { format: "realtalk", parsed: whole };
    }
    if ("speaker" in whole) return { format: "jsonl" }; // a JSONL file of one line
  }
  if (whole === undefined) {
    if (body.startsWith("[")) return { format: "locomo" }; // broken LoCoMo: its loader names the place
    const first = body.split("\n", 1)[0];
    try {
      const line: unknown = JSON.parse(first);
      if (isObject(line) && "speaker" in line) return { format: "jsonl" };
    } catch {
      // a broken single JSON document; fall through
    }
  }
  throw new EpicacheError(
    "conversation_invalid",
    "cannot tell the conversation format: expected LoCoMo JSON (an array of samples), REALTALK JSON " +
      "(an object with name and session_N) or JSONL (one {speaker, text} object per line)",
  );
}

/**
 * Loads a conversation file of any supported format (see {@link loadLocomo}, {@link loadRealtalk},
 * {@link loadJsonl}), detecting the format unless given.
 *
 * @example
 * ```ts
 * const { conversation, qa } = loadConversation(await file.text(), { sampleId: "conv-30" });
 * const jsonl = loadConversation(text, { format: "jsonl", id: "support-chat" });
 * ```
 */
export function loadConversation(
  text: string,
  options: LoadConversationOptions = {},
): LoadedConversation {
  const { format, parsed } =
    options.format === undefined ? detect(text) : { format: options.format, parsed: undefined };
  const input = parsed ?? text;
  switch (format) {
    case "locomo":
      return loadLocomo(input, { sampleId: options.sampleId });
    case "realtalk":
      return loadRealtalk(input, { id: options.id });
    case "jsonl":
      return loadJsonl(text, { id: options.id });
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

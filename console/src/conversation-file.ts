/**
 * What the console does with a conversation file before it talks to the edge: reads LoCoMo or
 * REALTALK JSON, or JSONL, into the messages `POST /v1/conversations/{id}/messages` takes, and cuts
 * them into requests the edge accepts. Pure: no DOM, no network (console.ts does those).
 */
import type { Message } from "@epicache/client";
import {
  detectConversationFormat,
  loadConversation,
  locomoSampleIds,
  type ConversationFormat,
} from "@epicache/shared/loaders";

/** A file read into messages. */
export interface ParsedConversation {
  format: ConversationFormat;
  messages: Message[];
  sessions: number;
  speakers: readonly string[];
  /** LoCoMo: every `sample_id` in the file, in its order (one conversation is loaded at a time). */
  samples: string[];
  /** A conversation id for it: the LoCoMo sample, the REALTALK name, else none. */
  suggestedId: string | undefined;
}

/** Ids the edge takes: 1 to 64 ASCII letters, digits, `_`, `-` or `.`, starting with a letter or digit, without `..`. */
export function isConversationId(id: string): boolean {
  return /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(id) && !id.includes("..");
}

/** `name` made into a conversation id (other characters become `-`), or undefined when nothing is left. */
export function conversationIdOf(name: string): string | undefined {
  const id = name
    .replace(/[^A-Za-z0-9_.-]+/g, "-")
    .replace(/\.{2,}/g, ".")
    .replace(/^[^A-Za-z0-9]+/, "")
    .slice(0, 64);
  return id !== "" && isConversationId(id) ? id : undefined;
}

/**
 * Reads a conversation file of any format the service's loaders read (shared's loadConversation):
 *
 * - JSONL: each line is sent as it is (`{id?, speaker, text, timestamp?, session?}`, the append
 *   route's message), a line without an `id` getting the loader's (`D<session>:<n>`);
 * - LoCoMo (sample `sampleId`, default the first) and REALTALK: each turn becomes a message with its
 *   `dia_id` as id, its session number, and its session's date (REALTALK: the turn's time) as
 *   timestamp; an image's caption is kept in the text as `[shares an image: …]`, since messages
 *   have no caption field.
 *
 * Throws the loader's error (`line 3 of the JSONL: text must be a string, …`) for a malformed file.
 *
 * @example
 * ```ts
 * parseConversation('{"id":"m1","speaker":"Ann","text":"Hi","session":1}').messages;
 * // [{ id: "m1", speaker: "Ann", text: "Hi", session: 1 }]
 * ```
 */
export function parseConversation(
  text: string,
  options: { sampleId?: string } = {},
): ParsedConversation {
  const format = detectConversationFormat(text);
  const { conversation } = loadConversation(text, { format, sampleId: options.sampleId });
  const turns = conversation.sessions.flatMap((s) => s.turns.map((t) => ({ session: s, turn: t })));
  if (format === "jsonl") {
    // The loader took every non-blank line as one turn, in order, and checked each.
    const lines = text
      .replace(/^\uFEFF/, "")
      .split("\n")
      .filter((l) => l.trim() !== "")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const messages = lines.map((line, i) => {
      const m: Message = {
        id: typeof line.id === "string" ? line.id : turns[i].turn.id,
        speaker: String(line.speaker),
        text: String(line.text),
      };
      if (typeof line.timestamp === "string") m.timestamp = line.timestamp;
      if (
        typeof line.session === "string" ||
        (typeof line.session === "number" && Number.isInteger(line.session))
      )
        m.session = line.session;
      return m;
    });
    return {
      format,
      messages,
      sessions: conversation.sessions.length,
      speakers: conversation.speakers,
      samples: [],
      suggestedId: undefined,
    };
  }
  const messages = turns.map(({ session, turn }) => {
    const caption = turn.caption?.trim() ?? "";
    const m: Message = {
      id: turn.id,
      speaker: turn.speaker,
      text: caption === "" ? turn.text : `${turn.text} [shares an image: ${caption}]`,
      session: session.index,
    };
    const when = turn.timestamp ?? session.date;
    if (when !== undefined && when.length <= 64) m.timestamp = when;
    return m;
  });
  const samples = format === "locomo" ? locomoSampleIds(text) : [];
  return {
    format,
    messages,
    sessions: conversation.sessions.length,
    speakers: conversation.speakers,
    samples,
    suggestedId: conversationIdOf(conversation.id),
  };
}

/** How big an append request may be: the edge's MAX_MESSAGES_PER_REQUEST and MAX_REQUEST_BYTES (wrangler.toml's defaults). */
export interface BatchLimits {
  maxMessages: number;
  maxBytes: number;
}

/** wrangler.toml's MAX_MESSAGES_PER_REQUEST (500), and its MAX_REQUEST_BYTES (1 MiB) less room for the rest of the body. */
export const DEFAULT_BATCH_LIMITS: BatchLimits = { maxMessages: 500, maxBytes: 1_048_576 - 1024 };

const encoder = new TextEncoder();

/**
 * `messages` cut, in order, into batches of at most `maxMessages` whose `{"messages": […]}` body is at
 * most `maxBytes` (a message larger than that alone is a batch of its own: the edge then says why).
 *
 * @example
 * ```ts
 * batchesOf(messages, { maxMessages: 2, maxBytes: 1e6 }).map((b) => b.length); // [2, 2, 1] for 5 messages
 * ```
 */
export function batchesOf(
  messages: readonly Message[],
  limits: BatchLimits = DEFAULT_BATCH_LIMITS,
): Message[][] {
  const batches: Message[][] = [];
  const overhead = encoder.encode('{"messages":[]}').length;
  let current: Message[] = [];
  let bytes = overhead;
  for (const m of messages) {
    const size = encoder.encode(JSON.stringify(m)).length + 1;
    if (
      current.length > 0 &&
      (current.length >= limits.maxMessages || bytes + size > limits.maxBytes)
    ) {
      batches.push(current);
      current = [];
      bytes = overhead;
    }
    current.push(m);
    bytes += size;
  }
  if (current.length > 0) batches.push(current);
  return batches;
}

/** Seconds as words: `12 s`, `3 min 5 s`, `1 h 2 min`. */
export function formatSeconds(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

/** Bytes as words: `512 B`, `12.3 KiB`, `4.0 MiB`. */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

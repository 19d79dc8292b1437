import { assembleConversation } from "./assemble-conversation";
import type { LoadedConversation, Session, Turn } from "./conversation";
import {
  childPath,
  expectArray,
  expectObject,
  optionalString,
  requiredString,
} from "./json-fields";
import { numberedSessionKeys } from "./numbered-sessions";
import { parseJsonText } from "./parse-json";
import { readQaItems } from "./qa-items";

/**
 * Options of {@link loadRealtalk}.
 *
 * @example
 * ```ts
 * loadRealtalk(text, { id: "chat-1" });
 * ```
 */
export interface LoadRealtalkOptions {
  /** The conversation id; default `realtalk-<speaker_1>-<speaker_2>` in lower case (`realtalk-emi-elise`). */
  readonly id?: string;
}

const SOURCE = "REALTALK JSON";

/**
 * Loads a REALTALK file (`Chat_<n>_<A>_<B>.json`: 21 days of real messaging between two people):
 * `{name: {speaker_1, speaker_2}, session_N: [{clean_text, speaker, date_time, dia_id, blip_caption?,
 * img_file, img_url}], session_N_date_time, events_session_N, qa: [{question, answer, evidence,
 * category}]}`. Sessions are ordered by N as a number; a message's `clean_text` (or `text` when a file
 * has no `clean_text`) is the turn text, `date_time` its timestamp, `dia_id` its id, `blip_caption`
 * its caption. `events_session_N` and the image file names are ignored. QA categories are 1 multi-hop,
 * 2 temporal, 3 commonsense.
 *
 * `input` is the file's text or its parsed value. Malformed input is a `conversation_invalid` error
 * naming the place (`REALTALK JSON: session_3[4].speaker must be a string, got null`).
 *
 * @example
 * ```ts
 * const { conversation, qa } = loadRealtalk(await file.text());
 * conversation.id; // "realtalk-emi-elise"
 * conversation.sessions[0].turns[0]; // { id: "D1:1", speaker: "Emi", text: "Hey! How are you?", timestamp: "29.12.2023, 22:42:04" }
 * ```
 */
export function loadRealtalk(
  input: unknown,
  options: LoadRealtalkOptions = {},
): LoadedConversation {
  const data = typeof input === "string" ? parseJsonText(input, SOURCE) : input;
  const file = expectObject(data, SOURCE, "");
  const name = expectObject(file.name, SOURCE, "name");
  const speakers = [
    requiredString(name, "speaker_1", SOURCE, "name"),
    requiredString(name, "speaker_2", SOURCE, "name"),
  ];
  const sessions: Session[] = numberedSessionKeys(file).map(({ index, key }) => {
    const turns = expectArray(file[key], SOURCE, key).map((raw, i) =>
      readMessage(raw, childPath(key, i)),
    );
    const date = optionalString(file, `${key}_date_time`, SOURCE, "");
    return date === undefined ? { index, turns } : { index, date, turns };
  });
  const id = options.id ?? ["realtalk", ...speakers.map(slug)].join("-");
  return {
    conversation: assembleConversation(id, speakers, sessions, SOURCE),
    qa: readQaItems(file.qa, SOURCE, "qa"),
  };
}

function readMessage(raw: unknown, path: string): Turn {
  const message = expectObject(raw, SOURCE, path);
  const id = requiredString(message, "dia_id", SOURCE, path);
  const speaker = requiredString(message, "speaker", SOURCE, path);
  const text =
    message.clean_text === undefined && typeof message.text === "string"
      ? message.text
      : requiredString(message, "clean_text", SOURCE, path);
  const timestamp = optionalString(message, "date_time", SOURCE, path);
  const caption = optionalString(message, "blip_caption", SOURCE, path);
  return {
    id,
    speaker,
    text,
    ...(caption === undefined ? {} : { caption }),
    ...(timestamp === undefined ? {} : { timestamp }),
  };
}

/** `Fahim Khan` → `fahim-khan`. */
function slug(name: string): string {
  return (
    name
      .toLowerCase()
      .replace(/[^\p{L}\p{N}]+/gu, "-")
      .replace(/^-+|-+$/g, "") || "speaker"
  );
}

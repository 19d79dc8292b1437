import { EpicacheError } from "../errors";
import { assembleConversation } from "./assemble-conversation";
import type { LoadedConversation, Session, Turn } from "./conversation";
import { describeJson, expectObject, fail, optionalString, requiredString } from "./json-fields";
import { jsonSyntaxErrorOffset, stripBom } from "./parse-json";

/**
 * Options of {@link loadJsonl}.
 *
 * @example
 * ```ts
 * loadJsonl(text, { id: "support-chat-42" });
 * ```
 */
export interface LoadJsonlOptions {
  /** The conversation id; default `conversation`. */
  readonly id?: string;
}

/**
 * Loads a plain JSONL conversation: one message `{speaker, text, timestamp?, session?, id?}` per line.
 *
 * - Blank lines are allowed (and counted, so line numbers in messages match an editor's).
 * - A new session starts when `session` (a string or a number; `2` and `"2"` are the same) differs from
 *   the previous message's; a line without `session` stays in the current session. Sessions are
 *   numbered 1, 2, … in order of appearance, so a value that comes back later opens a new session.
 * - A session's date is the `timestamp` of its first message, when that has one.
 * - Turn ids are the lines' `id`s (the client message ids of the HTTP API) or else `D<session>:<n>`,
 *   n counting from 1 within the session; every id must be unique.
 * - Other fields are ignored. The result has no QA items.
 *
 * Malformed input is a `conversation_invalid` error naming the line: `line 17 of the JSONL: text must be
 * a string, got a number`, `line 3 of the JSONL is not valid JSON at column 12: …`.
 *
 * @example
 * ```ts
 * const { conversation } = loadJsonl(
 *   '{"speaker":"Ann","text":"Hi!","session":"mon"}\n' +
 *   '{"speaker":"Bo","text":"Hello."}\n' +
 *   '{"speaker":"Ann","text":"Back again.","session":"tue","timestamp":"2024-05-07T09:00:00Z"}\n',
 *   { id: "ann-bo" },
 * );
 * conversation.sessions.map((s) => [s.index, s.date, s.turns.map((t) => t.id)]);
 * // [[1, undefined, ["D1:1", "D1:2"]], [2, "2024-05-07T09:00:00Z", ["D2:1"]]]
 * ```
 */
export function loadJsonl(text: string, options: LoadJsonlOptions = {}): LoadedConversation {
  const sessions: { index: number; date?: string; turns: Turn[] }[] = [];
  let currentKey: string | undefined;
  const lineOfId = new Map<string, number>();

  stripBom(text)
    .split("\n")
    .forEach((rawLine, i) => {
      const lineNumber = i + 1;
      const line = rawLine.endsWith("\r") ? rawLine.slice(0, -1) : rawLine;
      if (line.trim() === "") return;
      const source = `line ${lineNumber} of the JSONL`;
      const message = expectObject(parseLine(line, source), source, "");

      const speaker = requiredString(message, "speaker", source, "");
      if (speaker.trim() === "") fail(source, "speaker", "must not be empty");
      const textOfTurn = requiredString(message, "text", source, "");
      const timestamp = optionalString(message, "timestamp", source, "");
      const key = sessionKey(message.session, source);

      if (sessions.length === 0 || (key !== undefined && key !== currentKey)) {
        sessions.push({ index: sessions.length + 1, turns: [] });
        currentKey = key;
      }
      const session = sessions[sessions.length - 1];
      if (session.turns.length === 0 && timestamp !== undefined) session.date = timestamp;

      const given = optionalString(message, "id", source, "");
      if (given !== undefined && given === "") fail(source, "id", "must not be empty");
      const id = given ?? `D${session.index}:${session.turns.length + 1}`;
      const earlier = lineOfId.get(id);
      if (earlier !== undefined) {
        fail(source, "id", `"${id}"${given === undefined ? " (generated)" : ""} repeats the id of line ${earlier}`);
      }
      lineOfId.set(id, lineNumber);

      session.turns.push({ id, speaker, text: textOfTurn, ...(timestamp === undefined ? {} : { timestamp }) });
    });

  const done: Session[] = sessions.map(({ index, date, turns }) => (date === undefined ? { index, turns } : { index, date, turns }));
  return { conversation: assembleConversation(options.id ?? "conversation", [], done, "JSONL"), qa: [] };
}

function parseLine(line: string, source: string): unknown {
  try {
    return JSON.parse(line);
  } catch (e) {
    const offset = jsonSyntaxErrorOffset(line);
    const where = offset === undefined ? "" : ` at column ${offset + 1}`;
    const reason = e instanceof Error ? e.message : String(e);
    throw new EpicacheError("conversation_invalid", `${source} is not valid JSON${where}: ${reason}`, { cause: e });
  }
}

/** The session value as a comparable key (`2` and `"2"` are one session), undefined when absent or null. */
function sessionKey(value: unknown, source: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === "string" || (typeof value === "number" && Number.isFinite(value))) return String(value);
  return fail(source, "session", `must be a string or a number, got ${describeJson(value)}`);
}

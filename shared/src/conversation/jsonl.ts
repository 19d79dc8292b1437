import { EpicacheError } from "../errors";
import type { LoadedConversation } from "./conversation";
import { describeJson, expectObject, fail, optionalString, requiredString } from "./json-fields";
import { conversationFromMessages, type Message } from "./messages";
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
  const messages: Message[] = [];
  const lineOf: number[] = [];
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
      const id = optionalString(message, "id", source, "");
      if (id !== undefined && id === "") fail(source, "id", "must not be empty");
      const session = message.session;
      if (
        session !== undefined &&
        session !== null &&
        typeof session !== "string" &&
        !(typeof session === "number" && Number.isFinite(session))
      ) {
        fail(source, "session", `must be a string or a number, got ${describeJson(session)}`);
      }
      messages.push({
        speaker,
        text: textOfTurn,
        ...(id === undefined ? {} : { id }),
        ...(timestamp === undefined ? {} : { timestamp }),
        ...(session === undefined || session === null
          ? {}
          : { session: session as string | number }),
      });
      lineOf.push(lineNumber);
    });
  const { conversation } = conversationFromMessages(options.id ?? "conversation", messages, {
    where: (i) => `line ${lineOf[i]} of the JSONL`,
    refer: (i) => `line ${lineOf[i]}`,
    source: "JSONL",
  });
  return { conversation, qa: [] };
}

function parseLine(line: string, source: string): unknown {
  try {
    return JSON.parse(line);
  } catch (e) {
    const offset = jsonSyntaxErrorOffset(line);
    const where = offset === undefined ? "" : ` at column ${offset + 1}`;
    const reason = e instanceof Error ? e.message : String(e);
    throw new EpicacheError(
      "conversation_invalid",
      `${source} is not valid JSON${where}: ${reason}`,
      { cause: e },
    );
  }
}

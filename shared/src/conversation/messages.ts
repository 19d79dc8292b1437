import { EpicacheError } from "../errors";
import { assembleConversation } from "./assemble-conversation";
import type { Conversation, Session, Turn } from "./conversation";

/**
 * One message of a transcript as typed data: what a JSONL line holds and what the HTTP API stores.
 *
 * @example
 * ```ts
 * const m: Message = { id: "m1", speaker: "Ann", text: "Hi!", session: "2024-05-07", timestamp: "2024-05-07T09:00:00Z" };
 * ```
 */
export interface Message {
  readonly id?: string;
  readonly speaker: string;
  readonly text: string;
  readonly timestamp?: string;
  /** A new session starts where this differs from the previous message's (absent: the same session). */
  readonly session?: string | number;
}

/**
 * Where a transcript's last session stands, so that later messages can continue it: the session's
 * key (its `session` value), its number and how many turns it has.
 */
export interface SessionCursor {
  readonly key?: string;
  readonly index: number;
  readonly turns: number;
}

/** Options of {@link conversationFromMessages}. */
export interface FromMessagesOptions {
  /** Names message i in errors; default `messages[i]`. */
  readonly where?: (i: number) => string;
  /** Names an earlier message i inside an error about a later one; default `where`. */
  readonly refer?: (i: number) => string;
  /** The transcript these messages continue (their sessions and generated ids continue from it). */
  readonly after?: SessionCursor;
  /** What the messages came from, for an error about all of them; default "the transcript". */
  readonly source?: string;
  /** Ids the earlier transcript already uses (a repeat is an error). */
  readonly usedIds?: ReadonlySet<string>;
}

/**
 * Messages as a conversation, by the transcript rules:
 *
 * - a new session starts when `session` differs from the previous message's (`2` and `"2"` are one
 *   session); a message without `session` stays in the current one. Sessions are numbered 1, 2, … in
 *   order of appearance, so a value that comes back later opens a new session;
 * - a session's date is the `timestamp` of its first message, when that has one;
 * - turn ids are the messages' `id`s (the client message ids of the HTTP API) or else `D<session>:<n>`,
 *   n counting from 1 within the session; every id must be unique.
 *
 * With `after`, the messages continue an earlier transcript: the first ones stay in its last session
 * unless their `session` differs from its key, and numbering continues. The returned cursor is where
 * the messages leave the transcript. Bad input is `conversation_invalid` naming the message.
 *
 * @example
 * ```ts
 * const { conversation, cursor } = conversationFromMessages("ann-bo", [
 *   { speaker: "Ann", text: "Hi!", session: "mon" },
 *   { speaker: "Bo", text: "Hello." },
 * ]);
 * conversation.sessions[0].turns.map((t) => t.id); // ["D1:1", "D1:2"]
 * cursor; // { key: "mon", index: 1, turns: 2 }
 * ```
 */
export function conversationFromMessages(
  id: string,
  messages: readonly Message[],
  opts: FromMessagesOptions = {},
): { conversation: Conversation; cursor: SessionCursor } {
  const where = opts.where ?? ((i: number) => `messages[${i}]`);
  const sessions: { index: number; date?: string; turns: Turn[] }[] = [];
  let key = opts.after?.key;
  let index = opts.after?.index ?? 0;
  // Turns the current session already had before these messages (continuing `after`'s last session).
  let before = opts.after?.turns ?? 0;
  const seen = new Map<string, number>();
  messages.forEach((m, i) => {
    const source = where(i);
    if (typeof m.speaker !== "string" || m.speaker.trim() === "")
      bad(source, "speaker must be a non-empty string");
    if (typeof m.text !== "string") bad(source, "text must be a string");
    const next = sessionKey(m.session, source);
    const opens = index === 0 || (next !== undefined && next !== key);
    if (opens) {
      index++;
      before = 0;
      key = next;
      sessions.push({ index, turns: [] });
    } else if (sessions.length === 0) {
      // The first messages continue the earlier transcript's last session.
      sessions.push({ index, turns: [] });
    }
    const session = sessions[sessions.length - 1];
    if (session.turns.length === 0 && before === 0 && m.timestamp !== undefined)
      session.date = m.timestamp;
    if (m.id !== undefined && (typeof m.id !== "string" || m.id === ""))
      bad(source, "id must be a non-empty string");
    const turnId = m.id ?? `D${session.index}:${before + session.turns.length + 1}`;
    const earlier = seen.get(turnId);
    if (earlier !== undefined)
      bad(
        source,
        `id "${turnId}"${m.id === undefined ? " (generated)" : ""} repeats the id of ${(opts.refer ?? where)(earlier)}`,
      );
    if (opts.usedIds?.has(turnId))
      bad(
        source,
        `id "${turnId}"${m.id === undefined ? " (generated)" : ""} repeats an id of the earlier transcript`,
      );
    seen.set(turnId, i);
    session.turns.push({
      id: turnId,
      speaker: m.speaker,
      text: m.text,
      ...(m.timestamp === undefined ? {} : { timestamp: m.timestamp }),
    });
  });
  const done: Session[] = sessions.map(({ index: n, date, turns }) =>
    date === undefined ? { index: n, turns } : { index: n, date, turns },
  );
  const last = sessions[sessions.length - 1];
  const cursor: SessionCursor = {
    ...(key === undefined ? {} : { key }),
    index,
    turns: before + (last?.turns.length ?? 0),
  };
  return {
    conversation: assembleConversation(id, [], done, opts.source ?? "the transcript"),
    cursor,
  };
}

function bad(source: string, problem: string): never {
  throw new EpicacheError("conversation_invalid", `${source}: ${problem}`);
}

/** The session value as a comparable key (`2` and `"2"` are one session), undefined when absent or null. */
function sessionKey(value: unknown, source: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === "string" || (typeof value === "number" && Number.isFinite(value)))
    return String(value);
  return bad(source, `session must be a string or a number, got ${JSON.stringify(value)}`);
}

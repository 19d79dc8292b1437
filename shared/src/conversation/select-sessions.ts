import { EpicacheError } from "../errors";
import type { Conversation } from "./conversation";

/**
 * The sessions numbered A to B (inclusive; `3` alone is `3-3`, `5-` is 5 to the end), by the
 * sessions' own numbers: a history as it stood when session B ended, or a slice to build from.
 *
 * @example
 * ```ts
 * selectSessions(conversation, "1-10").sessions.length; // 10 (for LoCoMo's session_1 … session_10)
 * ```
 */
export function selectSessions(conversation: Conversation, range: string): Conversation {
  const m = /^\s*(\d+)\s*(?:(-)\s*(\d*))?\s*$/.exec(range);
  if (!m)
    throw new EpicacheError(
      "invalid_argument",
      `sessions ${JSON.stringify(range)} is not a range such as 3, 1-10 or 5-`,
    );
  const from = Number(m[1]);
  const to = m[2] === undefined ? from : m[3] === "" ? Number.POSITIVE_INFINITY : Number(m[3]);
  if (from < 1 || to < from)
    throw new EpicacheError(
      "invalid_argument",
      `sessions ${JSON.stringify(range)} is an empty range`,
    );
  const sessions = conversation.sessions.filter((s) => s.index >= from && s.index <= to);
  if (!sessions.some((s) => s.turns.length > 0)) {
    throw new EpicacheError(
      "invalid_argument",
      `sessions ${range} hold no turns (the conversation has sessions ${conversation.sessions.map((s) => s.index).join(", ")})`,
    );
  }
  return { ...conversation, sessions };
}

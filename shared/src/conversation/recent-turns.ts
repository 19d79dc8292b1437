import { EpicacheError } from "../errors";
import type { Conversation } from "./conversation";
import { largestFitting } from "./cut-to-sessions";
import { renderContext, type RenderContextOptions } from "./render-context";

/**
 * The longest suffix of whole turns whose rendered context ({@link renderContext} with `options`) is at
 * most `maxTokens` tokens by `countTokens`: what an assistant whose prompt holds only the latest part
 * of a conversation sees. Each kept turn stays in its session (with the session's date); sessions left
 * without turns are dropped. Same id and speakers, so the header does not change. `maxTokens` must be
 * a non-negative number (`invalid_argument` otherwise).
 *
 * The search is binary over the number of turns kept (about log2(turns) + 1 calls of `countTokens`),
 * assuming one more turn never lowers the count.
 *
 * @example
 * ```ts
 * const recent = recentTurns(conversation, 7000, (text) => tokenizer.encode(text).length);
 * recent.sessions[0].turns[0].id; // e.g. "D13:4": sessions 1–12 and part of 13 left out
 * ```
 */
export function recentTurns(
  conversation: Conversation,
  maxTokens: number,
  countTokens: (text: string) => number,
  options: RenderContextOptions = {},
): Conversation {
  if (!(maxTokens >= 0)) {
    throw new EpicacheError(
      "invalid_argument",
      `maxTokens must be a non-negative number, got ${maxTokens}`,
    );
  }
  const total = conversation.sessions.reduce((n, s) => n + s.turns.length, 0);
  const suffix = (count: number): Conversation => {
    let skip = total - count;
    const sessions = [];
    for (const session of conversation.sessions) {
      if (skip >= session.turns.length) {
        skip -= session.turns.length;
        continue;
      }
      sessions.push(skip > 0 ? { ...session, turns: session.turns.slice(skip) } : session);
      skip = 0;
    }
    return { ...conversation, sessions };
  };
  return suffix(
    largestFitting(
      total,
      (count) => countTokens(renderContext(suffix(count), options)) <= maxTokens,
    ),
  );
}

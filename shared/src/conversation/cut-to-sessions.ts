import { EpicacheError } from "../errors";
import type { Conversation } from "./conversation";
import { renderContext, type RenderContextOptions } from "./render-context";

/**
 * The longest prefix of whole sessions whose rendered context ({@link renderContext} with `options`)
 * is at most `maxTokens` tokens by `countTokens`: the conversation cut for a model whose context window
 * cannot hold all of it. Same id and speakers (so the header does not change); possibly no sessions at
 * all when even the first one does not fit. `maxTokens` must be a non-negative number
 * (`invalid_argument` otherwise).
 *
 * The search is binary over the number of sessions (about log2(sessions) + 1 calls of `countTokens` on
 * the rendered text), which assumes that rendering one more session never lowers the token count: true
 * of any tokenizer that encodes a longer text with at least as many tokens.
 *
 * @example
 * ```ts
 * const kept = cutToSessions(conversation, 8192, (text) => tokenizer.encode(text).length);
 * kept.sessions.length; // e.g. 12 of 19
 * ```
 */
export function cutToSessions(
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
  const prefix = (count: number): Conversation => ({
    ...conversation,
    sessions: conversation.sessions.slice(0, count),
  });
  return prefix(
    largestFitting(
      conversation.sessions.length,
      (count) => countTokens(renderContext(prefix(count), options)) <= maxTokens,
    ),
  );
}

/**
 * The largest count in 0…`total` for which `fits` holds, for a `fits` that holds up to some count and
 * not beyond (0 when nothing fits): a binary search, about log2(total) + 1 calls.
 *
 * @example largestFitting(10, (n) => n * n <= 30) // 5
 */
export function largestFitting(total: number, fits: (count: number) => boolean): number {
  // Invariant: `low` fits (or low = 0), `high + 1` does not (or high = total).
  let low = 0;
  let high = total;
  if (fits(high)) return high;
  high--;
  while (low < high) {
    const mid = Math.ceil((low + high) / 2);
    if (fits(mid)) low = mid;
    else high = mid - 1;
  }
  return low;
}

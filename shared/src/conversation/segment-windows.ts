import { EpicacheError } from "../errors";
import type { Conversation } from "./conversation";
import { formatTurnLine } from "./turn-line";

/**
 * A window of consecutive turns, the unit that is embedded and clustered into episodes (docs/design.md §1,
 * stage 1).
 *
 * @example
 * ```ts
 * const window: ConversationWindow = {
 *   index: 0, turnIds: ["D1:1", "D1:2"],
 *   text: 'Caroline said, "Hey Mel!"\nMelanie said, "Hey Caroline!"',
 * };
 * ```
 */
export interface ConversationWindow {
  /** 0, 1, … in conversation order. */
  readonly index: number;
  /** The ids of the window's turns, in order. */
  readonly turnIds: readonly string[];
  /** The turns' lines ({@link formatTurnLine}, captions included) joined by `\n`, no trailing newline. */
  readonly text: string;
}

/**
 * Cuts a conversation into consecutive, non-overlapping windows of `w` turns, across session
 * boundaries (a window may end one session and start the next); the last window holds the remaining
 * 1…w turns. Sessions without turns contribute nothing. `w` must be a positive integer
 * (`invalid_argument` otherwise).
 *
 * Unlike the authors' code, which embeds the bare `{speaker} said, "{text}"` lines, a turn that shared an
 * image also carries its caption, so a photo's subject can draw the window to the right episode.
 *
 * @example
 * ```ts
 * const windows = segmentWindows(conversation); // w = 4
 * windows[0]; // { index: 0, turnIds: ["D1:1", "D1:2", "D1:3", "D1:4"], text: 'Caroline said, "Hey Mel! …"\nMelanie said, …' }
 * windows.length === Math.ceil(turnCount / 4); // true
 * ```
 */
export function segmentWindows(conversation: Conversation, w = 4): ConversationWindow[] {
  if (!Number.isInteger(w) || w < 1) {
    throw new EpicacheError("invalid_argument", `window size must be a positive integer, got ${w}`);
  }
  const turns = conversation.sessions.flatMap((session) => session.turns);
  const windows: ConversationWindow[] = [];
  for (let start = 0; start < turns.length; start += w) {
    const slice = turns.slice(start, start + w);
    windows.push({
      index: windows.length,
      turnIds: slice.map((turn) => turn.id),
      text: slice.map(formatTurnLine).join("\n"),
    });
  }
  return windows;
}

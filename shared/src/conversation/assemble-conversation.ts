import type { Conversation, Session } from "./conversation";
import { fail } from "./json-fields";

/**
 * The conversation a loader returns: `speakers` is the declared list followed by any other speaker in
 * order of first turn, and a file without a single turn is `conversation_invalid` (there is nothing to
 * segment, cluster or answer from).
 *
 * @example
 * ```ts
 * assembleConversation("c", ["Ann"], [{ index: 1, turns: [{ id: "D1:1", speaker: "Bo", text: "hi" }] }], "JSONL");
 * // { id: "c", speakers: ["Ann", "Bo"], sessions: [...] }
 * ```
 */
export function assembleConversation(
  id: string,
  declaredSpeakers: readonly string[],
  sessions: readonly Session[],
  source: string,
): Conversation {
  const speakers = [...declaredSpeakers];
  let turnCount = 0;
  for (const session of sessions) {
    for (const turn of session.turns) {
      turnCount++;
      if (!speakers.includes(turn.speaker)) speakers.push(turn.speaker);
    }
  }
  if (turnCount === 0) fail(source, "", "has no turns");
  return { id, speakers, sessions };
}

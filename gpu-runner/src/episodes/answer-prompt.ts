/**
 * The question appended to an episode cache: it closes the user turn that holds the history and
 * opens the assistant's, asking for a short answer (LoCoMo's gold answers are short phrases). For
 * questions about time, a hint points at the session dates.
 */
import type { ChatFrame } from "../press";

export const ANSWER_INSTRUCTION =
  "Based on the conversation above, answer the question in a short phrase.";
export const DATE_HINT = "Use the DATE of each session to work out when things happened.";

export function questionPrompt(
  frame: ChatFrame,
  question: string,
  opts: { dateHint?: boolean } = {},
): number[] {
  return frame.close(
    `\n\n${ANSWER_INSTRUCTION}${opts.dateHint ? ` ${DATE_HINT}` : ""}\nQuestion: ${question.trim()}`,
  );
}

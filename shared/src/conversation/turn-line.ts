import type { Turn } from "./conversation";

/**
 * The one-line rendering of a turn that segmentation and context rendering share:
 *
 *     {speaker} said, "{text}"
 *     {speaker} said, "{text}" [shares an image: {caption}]
 *
 * The first form is the paper's window line. The bracket is ours: LoCoMo and REALTALK captions are
 * machine descriptions of a shared photo ("a photo of a dog walking past a wall", "there is a stream
 * running through a forest"), so the line says plainly that an image was shared and quotes its
 * description, on the same line so that a turn stays one line. Line breaks inside the text or caption
 * become single spaces; quotes inside the text are kept as they are.
 *
 * @example
 * ```ts
 * formatTurnLine({ id: "D1:1", speaker: "Caroline", text: "Hey Mel!" });
 * // 'Caroline said, "Hey Mel!"'
 * formatTurnLine({ id: "D1:5", speaker: "Caroline", text: "So inspiring!", caption: "a photo of a mural" });
 * // 'Caroline said, "So inspiring!" [shares an image: a photo of a mural]'
 * ```
 */
export function formatTurnLine(turn: Turn): string {
  const line = `${turn.speaker} said, "${oneLine(turn.text)}"`;
  const caption = turn.caption === undefined ? "" : oneLine(turn.caption);
  return caption === "" ? line : `${line} [shares an image: ${caption}]`;
}

function oneLine(text: string): string {
  return text.replace(/[ \t]*(?:\r\n|\r|\n)\s*/g, " ").trim();
}

import type { Conversation } from "./conversation";
import { formatTurnLine } from "./turn-line";

/**
 * Options of {@link renderContext}.
 *
 * @example
 * ```ts
 * renderContext(conversation, { header: "", dates: false }); // turn lines only, sessions split by blank lines
 * ```
 */
export interface RenderContextOptions {
  /**
   * The first paragraph; default {@link defaultContextHeader}. An empty string renders no header (and
   * no blank line after it).
   */
  readonly header?: string;
  /** Write each session's `DATE: …` line when the session has a date; default true. */
  readonly dates?: boolean;
}

/**
 * The text the model reads for a conversation: a header naming the speakers, then each session as a
 * `DATE: {date}` line (when the date is known) followed by its turns, one line each
 * ({@link formatTurnLine}, captions included). Paragraphs are separated by one blank line; there is no
 * trailing newline. Sessions without turns are left out.
 *
 * The authors' preprocessing writes the same lines with a `CONVERSATION:` line under each date; we leave
 * that out (it adds tokens and says nothing the layout does not).
 *
 * @example
 * ```ts
 * renderContext(conversation);
 * // Below is a conversation between Caroline and Melanie. Each session starts with its date.
 * //
 * // DATE: 1:56 pm on 8 May, 2023
 * // Caroline said, "Hey Mel! Good to see you! How have you been?"
 * // Melanie said, "Hey Caroline! Good to see you! I'm swamped with the kids & work. …"
 * //
 * // DATE: 1:14 pm on 25 May, 2023
 * // …
 * ```
 */
export function renderContext(
  conversation: Conversation,
  options: RenderContextOptions = {},
): string {
  const dates = options.dates ?? true;
  const blocks: string[] = [];
  const header = options.header ?? defaultContextHeader(conversation, dates);
  if (header !== "") blocks.push(header);
  for (const session of conversation.sessions) {
    if (session.turns.length === 0) continue;
    const lines = session.turns.map(formatTurnLine);
    if (dates && session.date !== undefined) lines.unshift(`DATE: ${session.date}`);
    blocks.push(lines.join("\n"));
  }
  return blocks.join("\n\n");
}

/**
 * What {@link renderContext} of a longer conversation adds after a shorter one: the text of `later`'s
 * sessions as they continue a rendered history, so that an update can append to a history it no longer
 * holds. `continues` says that `later`'s first session is the history's last one going on (its turns
 * follow on the next lines, with no second DATE line). The header is the history's: when a longer
 * conversation's header would differ (a new speaker, a first date), appending is not rendering, and
 * the caller must render the whole conversation instead.
 *
 * @example
 * ```ts
 * renderContext(whole) === renderContext(head) + renderContinuation(tail, { continues: tailStartsInHeadsLastSession });
 * ```
 */
export function renderContinuation(
  later: Pick<Conversation, "sessions">,
  opts: { continues: boolean; dates?: boolean },
): string {
  const dates = opts.dates ?? true;
  let out = "";
  later.sessions.forEach((session, i) => {
    if (session.turns.length === 0) return;
    const lines = session.turns.map(formatTurnLine);
    if (i === 0 && opts.continues) {
      out += `\n${lines.join("\n")}`;
      return;
    }
    if (dates && session.date !== undefined) lines.unshift(`DATE: ${session.date}`);
    out += `\n\n${lines.join("\n")}`;
  });
  return out;
}

/**
 * The default header of {@link renderContext}: `Below is a conversation between A and B.` (`A, B and C`
 * for more speakers, `with A` for one), plus `Each session starts with its date.` when a session with
 * turns has a date and dates are rendered.
 *
 * @example
 * ```ts
 * defaultContextHeader({ id: "c", speakers: ["Caroline", "Melanie"], sessions: [] });
 * // "Below is a conversation between Caroline and Melanie."
 * ```
 */
export function defaultContextHeader(conversation: Conversation, dates = true): string {
  const names = conversation.speakers;
  const who =
    names.length === 0
      ? ""
      : names.length === 1
        ? ` with ${names[0]}`
        : ` between ${names.slice(0, -1).join(", ")} and ${names[names.length - 1]}`;
  const dated =
    dates && conversation.sessions.some((s) => s.date !== undefined && s.turns.length > 0);
  return `Below is a conversation${who}.${dated ? " Each session starts with its date." : ""}`;
}

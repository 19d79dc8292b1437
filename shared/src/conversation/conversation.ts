/**
 * The conversation model every loader produces and every later stage (segmentation, context rendering,
 * episode building, evaluation) consumes. Plain readonly data: no methods, JSON round-trips as is.
 *
 * @example
 * ```ts
 * const conversation: Conversation = {
 *   id: "conv-26",
 *   speakers: ["Caroline", "Melanie"],
 *   sessions: [{ index: 1, date: "1:56 pm on 8 May, 2023", turns: [
 *     { id: "D1:1", speaker: "Caroline", text: "Hey Mel! Good to see you!" },
 *   ] }],
 * };
 * ```
 */
export interface Conversation {
  readonly id: string;
  /** Speaker names: the ones the file declares, in its order, then any others in order of first turn. */
  readonly speakers: readonly string[];
  /** Sessions in chronological order. */
  readonly sessions: readonly Session[];
}

/**
 * One sitting of a conversation: turns that happened together, with the date when the file gives one.
 *
 * @example
 * ```ts
 * const session: Session = { index: 3, date: "7:55 pm on 9 June, 2023", turns: [] };
 * ```
 */
export interface Session {
  /** The session number: `N` of LoCoMo/REALTALK `session_N`; 1, 2, … in order of appearance for JSONL. */
  readonly index: number;
  /** Free text as the file writes it (`1:56 pm on 8 May, 2023`, `29.12.2023, 22:42:04`, an ISO time). */
  readonly date?: string;
  readonly turns: readonly Turn[];
}

/**
 * One utterance (speaker turn).
 *
 * @example
 * ```ts
 * const turn: Turn = {
 *   id: "D1:5", speaker: "Caroline", text: "The transgender stories were so inspiring!",
 *   caption: "a photo of a dog walking past a wall with a painting of a woman",
 * };
 * ```
 */
export interface Turn {
  /** The file's `dia_id` (`D<session>:<turn>`) or the JSONL `id`; generated as `D<session>:<n>` otherwise. */
  readonly id: string;
  readonly speaker: string;
  /** The utterance verbatim (line breaks included); renderers put it on one line. */
  readonly text: string;
  /** A description of an image the speaker shared (LoCoMo and REALTALK `blip_caption`). */
  readonly caption?: string;
  /** When the turn was sent, as the file writes it (REALTALK `date_time`, JSONL `timestamp`). */
  readonly timestamp?: string;
}

/**
 * A benchmark question about a conversation.
 *
 * @example
 * ```ts
 * const item: QaItem = {
 *   question: "When did Caroline go to the LGBTQ support group?",
 *   answer: "7 May 2023", evidence: ["D1:3"], category: 2,
 * };
 * ```
 */
export interface QaItem {
  readonly question: string;
  /**
   * The gold answer, as a string (numbers in the file, e.g. `2022`, are converted). For LoCoMo
   * adversarial items that have only `adversarial_answer`, that text, with {@link QaItem.adversarial} set.
   */
  readonly answer: string;
  /**
   * `dia_id`s of the turns that support the answer, verbatim from the file. An entry holding several
   * ids (`"D8:6; D9:17"`) is split on `;`, `,` and white space. Ids are not checked against the turns:
   * REALTALK evidence includes ranges (`D12:3-D12:5`) and typos (`D5:3.`).
   */
  readonly evidence: readonly string[];
  /**
   * The category as the file gives it. LoCoMo: 1 multi-hop, 2 temporal, 3 open-domain, 4 single-hop,
   * 5 adversarial. REALTALK: 1 multi-hop, 2 temporal, 3 commonsense.
   */
  readonly category: number | string;
  /**
   * True when {@link QaItem.answer} is LoCoMo's `adversarial_answer`: the question is unanswerable from
   * the conversation and that text is the tempting wrong answer, not a gold one.
   */
  readonly adversarial?: true;
}

/**
 * What a loader returns: the conversation and the QA items the file carries (empty for JSONL).
 *
 * @example
 * ```ts
 * const { conversation, qa } = loadLocomo(text, { sampleId: "conv-30" });
 * ```
 */
export interface LoadedConversation {
  readonly conversation: Conversation;
  readonly qa: readonly QaItem[];
}

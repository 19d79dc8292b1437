import type { JsonObject } from "./json-fields";

/** A `session_N` key of a LoCoMo or REALTALK conversation object, with its number. */
export interface NumberedSessionKey {
  readonly index: number;
  /** `session_N`; the date, when present, is under `session_N_date_time`. */
  readonly key: string;
}

/**
 * The `session_N` keys of a LoCoMo `conversation` or a REALTALK file, ordered by N as a number
 * (`session_2` before `session_10`), whatever the key order in the file. Other keys
 * (`session_N_date_time`, `events_session_N`, `speaker_a`, …) are not sessions.
 *
 * @example
 * ```ts
 * numberedSessionKeys({ session_10: [], session_2: [], session_2_date_time: "…" });
 * // [{ index: 2, key: "session_2" }, { index: 10, key: "session_10" }]
 * ```
 */
export function numberedSessionKeys(object: JsonObject): NumberedSessionKey[] {
  const keys: NumberedSessionKey[] = [];
  for (const key of Object.keys(object)) {
    const match = /^session_(\d+)$/.exec(key);
    if (match) keys.push({ index: Number(match[1]), key });
  }
  return keys.sort((a, b) => a.index - b.index);
}

import { EpicacheError } from "../errors";
import { assembleConversation } from "./assemble-conversation";
import type { LoadedConversation, Session, Turn } from "./conversation";
import {
  childPath,
  expectArray,
  expectObject,
  fail,
  type JsonObject,
  optionalString,
  requiredString,
} from "./json-fields";
import { numberedSessionKeys } from "./numbered-sessions";
import { parseJsonText } from "./parse-json";
import { readQaItems } from "./qa-items";

/**
 * Options of {@link loadLocomo}.
 *
 * @example
 * ```ts
 * loadLocomo(text, { sampleId: "conv-30" });
 * ```
 */
export interface LoadLocomoOptions {
  /** The `sample_id` to load (`conv-26`); default the first sample. */
  readonly sampleId?: string;
}

const SOURCE = "LoCoMo JSON";

/**
 * Loads one conversation of a LoCoMo file (the `locomo10.json` schema): an array of samples
 * `{sample_id, conversation: {speaker_a, speaker_b, session_N: [{speaker, dia_id, text, blip_caption?}],
 * session_N_date_time}, qa: [{question, answer | adversarial_answer, evidence, category}]}`. A single
 * sample object (not in an array) is accepted too. Sessions are ordered by N as a number; `dia_id`s
 * become turn ids, `blip_caption`s captions, `session_N_date_time` the session dates. Fields the model
 * does not use (`img_url`, `query`, `event_summary`, `observation`, …) are ignored.
 *
 * `input` is the file's text or its parsed value. Malformed input is a `conversation_invalid` error
 * naming the place (`LoCoMo sample "conv-26" ([0]): conversation.session_3[4].text must be a string,
 * got a number`); an unknown `sampleId` is `invalid_argument` listing the ids there are.
 *
 * @example
 * ```ts
 * const { conversation, qa } = loadLocomo(await file.text(), { sampleId: "conv-26" });
 * conversation.speakers; // ["Caroline", "Melanie"]
 * conversation.sessions[0].turns[0]; // { id: "D1:1", speaker: "Caroline", text: "Hey Mel! Good to see you! …" }
 * qa[0].category; // 2
 * ```
 */
export function loadLocomo(input: unknown, options: LoadLocomoOptions = {}): LoadedConversation {
  const { sample, sampleId, source } = selectSample(samplesOf(input), options.sampleId);
  const conversation = expectObject(sample.value.conversation, source, "conversation");
  const speakers = [
    requiredString(conversation, "speaker_a", source, "conversation"),
    requiredString(conversation, "speaker_b", source, "conversation"),
  ];
  const sessions: Session[] = numberedSessionKeys(conversation).map(({ index, key }) => {
    const path = childPath("conversation", key);
    const turns = expectArray(conversation[key], source, path).map((raw, i) =>
      readTurn(raw, source, childPath(path, i)),
    );
    const date = optionalString(conversation, `${key}_date_time`, source, "conversation");
    return date === undefined ? { index, turns } : { index, date, turns };
  });
  return {
    conversation: assembleConversation(sampleId, speakers, sessions, source),
    qa: readQaItems(sample.value.qa, source, "qa"),
  };
}

/**
 * The `sample_id`s of a LoCoMo file, in file order (to load every conversation of it).
 *
 * @example
 * ```ts
 * locomoSampleIds(text); // ["conv-26", "conv-30"]
 * for (const id of locomoSampleIds(data)) loadLocomo(data, { sampleId: id });
 * ```
 */
export function locomoSampleIds(input: unknown): string[] {
  return samplesOf(input).map(({ value, source }) =>
    requiredString(value, "sample_id", source, ""),
  );
}

interface Sample {
  readonly value: JsonObject;
  /** How messages name the sample before its id is known: `LoCoMo JSON [1]`. */
  readonly source: string;
}

function samplesOf(input: unknown): Sample[] {
  const data = typeof input === "string" ? parseJsonText(input, SOURCE) : input;
  // One sample on its own, as `locomo10.json[i]`.
  if (typeof data === "object" && data !== null && !Array.isArray(data) && "conversation" in data) {
    return [{ value: data as JsonObject, source: SOURCE }];
  }
  const list = expectArray(data, SOURCE, "");
  if (list.length === 0) fail(SOURCE, "", "has no samples");
  return list.map((raw, i) => ({
    value: expectObject(raw, SOURCE, `[${i}]`),
    source: `${SOURCE} [${i}]`,
  }));
}

/** The requested sample (default the first), with the name its messages use: `LoCoMo sample "conv-26" ([0])`. */
function selectSample(
  samples: Sample[],
  requested: string | undefined,
): { sample: Sample; sampleId: string; source: string } {
  const ids = samples.map(({ value, source }) => requiredString(value, "sample_id", source, ""));
  const at = requested === undefined ? 0 : ids.indexOf(requested);
  if (at < 0) {
    throw new EpicacheError(
      "invalid_argument",
      `${SOURCE} has no sample "${requested}" (it has ${ids.map((id) => `"${id}"`).join(", ")})`,
    );
  }
  const single = samples.length === 1 && samples[0].source === SOURCE;
  const sampleId = ids[at];
  return {
    sample: samples[at],
    sampleId,
    source: `LoCoMo sample "${sampleId}"${single ? "" : ` ([${at}])`}`,
  };
}

function readTurn(raw: unknown, source: string, path: string): Turn {
  const turn = expectObject(raw, source, path);
  const id = requiredString(turn, "dia_id", source, path);
  const speaker = requiredString(turn, "speaker", source, path);
  const text = requiredString(turn, "text", source, path);
  const caption = optionalString(turn, "blip_caption", source, path);
  return caption === undefined ? { id, speaker, text } : { id, speaker, text, caption };
}

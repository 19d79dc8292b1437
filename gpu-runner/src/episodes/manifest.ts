/**
 * The manifest of one built version of a conversation's episode caches
 * (`…/versions/{version}/manifest.json`): what the caches were built with and from, how questions
 * are routed to its episodes (the rule, the centroids, for `window`, `vote` and `lexical` every
 * window's vector, and for `lexical` every window's terms), and each cache's key, size and SHA-256.
 * Written after every cache it names.
 *
 * The model is named by id and fingerprint, never by a path, so a store built on one machine is read
 * on another (`findChatModel` finds the model there).
 */
import { decodeWindowVectors, EpicacheError, isValidId, ROUTING_RULES } from "@epicache/shared";
import type {
  KvcDtype,
  MedoidCount,
  RoutingData,
  RoutingRule,
  SessionCursor,
} from "@epicache/shared";
import type { AllocMode } from "../calibration";
import { POSITION_MODES, type Allocation, type PositionMode } from "../prefill";
import { chatModelRef, type ModelRef } from "../model-registry";

export const MANIFEST_FORMAT = "epicache-episodes/4";
/**
 * The previous format, still read: it had no routing rule, and its questions are routed by centroid.
 * (A new format rather than an optional field, so that a runner that knows only /3 refuses a /4
 * manifest instead of routing its questions by the wrong rule.)
 */
export const MANIFEST_FORMAT_3 = "epicache-episodes/3";
/**
 * The previous format, still read. It named the model by the builder's path, which is dropped: the
 * id is derived from the fingerprint (a registered model's id) or else the path's last part.
 */
export const MANIFEST_FORMAT_2 = "epicache-episodes/2";

/**
 * How questions are routed to a version's episodes (shared routeQuestion). `window`, `vote` and
 * `lexical` need every window's vector: int8 in base64 (shared encodeWindowVectors), in segmentation
 * order, of the embedder's dimension; each window's episode is the one whose `windows` lists it.
 * `lexical` also needs every window's terms (shared lexicalTerms of its text), one string per window
 * with the terms joined by single spaces ("" for a window without terms): about two thirds of the
 * window's text (424 characters per window on LoCoMo dev, 328 on REALTALK, next to the vectors' 512).
 * A vocabulary with term ids would save about a fifth (327 and 272) for a second structure to keep
 * consistent. It keeps the vectors for questions without a term in any window, which it routes as
 * `window`. A build with one episode records `centroid` whatever was
 * asked: every rule picks that episode.
 *
 * `lexical` came after /4 without a new format: a runner that knows /4 but not `lexical` refuses such
 * a manifest (an unknown rule) rather than routing it otherwise.
 */
export type ManifestRouting =
  | { rule: "centroid" }
  | { rule: "window"; windowVectors: string }
  | { rule: "vote"; k: number; windowVectors: string }
  | { rule: "lexical"; windowVectors: string; windowTerms: string[] };

export interface EpisodeManifest {
  format: typeof MANIFEST_FORMAT | typeof MANIFEST_FORMAT_3 | typeof MANIFEST_FORMAT_2;
  tenant: string;
  conversation: string;
  version: string;
  /** The model the caches were built with, and the numerics (asking uses the same). */
  model: ModelRef & { numerics: string; layers: number; kvHeads: number; headDim: number };
  embedder: { modelId: string; dimension: number };
  method: string;
  budget: number | null;
  block: number;
  /**
   * Where kept entries sit (prefill/positions.ts). Absent in manifests written before compact
   * positions existed, whose caches kept original positions.
   */
  positions?: PositionMode;
  /** Per layer, entries per KV head (M_ℓ); null for Full KV. */
  layerBudgets: number[] | null;
  /**
   * The build's options beyond the fields here, as given (absent: the defaults of the day), so that a
   * full build from this version builds as it was built (rebuildOptions). Absent in manifests written
   * before they were kept; updates carry their base's.
   */
  build?: BuildRecord;
  contextTokens: number;
  /** How K and V are stored in the .kvc files. */
  dtype: KvcDtype;
  /** How questions are routed; read as `centroid` from /2 and /3 manifests. */
  routing: ManifestRouting;
  episodes: Array<{
    id: number;
    /** Object key of the .kvc file. */
    key: string;
    bytes: number;
    sha256: string;
    /** L2-normalised centroid of the episode's windows. */
    centroid: number[];
    /** Window indices (segmentation order) in the episode; the episodes' lists partition the windows. */
    windows: number[];
    /** The representative windows (chronological). */
    representatives: number[];
    entries: number;
    /** Entries per layer over all KV heads (sums to `entries`); absent in manifests written before it was kept. */
    layerEntries?: number[];
  }>;
  /**
   * What a later update continues from (update-episodes.ts); absent in manifests written before
   * updates existed, which can only be rebuilt in full.
   */
  update?: UpdateState;
  createdAt: string;
}

/** Options of buildEpisodes that a manifest's other fields do not hold (see EpisodeManifest.build). */
export interface BuildRecord {
  nMedoid?: MedoidCount;
  alloc?: AllocMode;
  sharpness?: number;
  headAllocation?: Allocation;
  windowSize?: number;
  seed?: number;
  maxContext?: number;
}

/** What an update needs of the version it continues, and how this version came to be. */
export interface UpdateState {
  kind: "full" | "incremental";
  /** Why this kind: "first build", "requested", "no usable base: …", "grew 2.1× since clustering", … */
  reason: string;
  /** The version this one continued; null for a full build. */
  baseVersion: string | null;
  /** The history's last turn id (the client's message id when it gave one) and where its session stands. */
  lastTurnId: string;
  cursor: SessionCursor;
  /** The speakers the context's header names: a new one means the header changes, so a full build. */
  speakers: string[];
  /** Turns in the history now, and when it was last clustered in full. */
  turns: number;
  turnsAtClustering: number;
  /** The last window while it has fewer turns than a window holds: the next turns complete it. */
  tail: { index: number; lines: string[]; vector: number[] } | null;
  /**
   * Per episode: the sum of its windows' unit vectors and their count (its centroid as a running
   * mean), and its patched prompt's representative text, fixed between full builds.
   */
  episodes: Array<{ sum: number[]; count: number; prompt: string }>;
  /** Mean cosine of the windows to their episode's centroid without them (leave-one-out), at the last full clustering; 0 when no episode has two windows. */
  cohesion: number;
}

/** Checks the parts of a manifest that readers rely on; `store_invalid` naming `source` otherwise. */
export function parseManifest(text: string, source: string): EpisodeManifest {
  let m: unknown;
  try {
    m = JSON.parse(text);
  } catch (e) {
    throw new EpicacheError("store_invalid", `${source}: ${(e as Error).message}`);
  }
  const bad = (why: string): never => {
    throw new EpicacheError("store_invalid", `${source}: ${why}`);
  };
  const o = m as Partial<EpisodeManifest>;
  if (typeof o !== "object" || o === null) bad("not a JSON object");
  if (
    o.format !== MANIFEST_FORMAT &&
    o.format !== MANIFEST_FORMAT_3 &&
    o.format !== MANIFEST_FORMAT_2
  )
    bad(
      `format ${JSON.stringify(o.format)} is not ${MANIFEST_FORMAT} (or ${MANIFEST_FORMAT_3}, ${MANIFEST_FORMAT_2})`,
    );
  for (const k of ["tenant", "conversation", "version"] as const)
    if (!isValidId(o[k])) bad(`${k} ${JSON.stringify(o[k])} is not a valid id`);
  if (!Array.isArray(o.episodes) || o.episodes.length === 0) bad("no episodes");
  if (o.positions !== undefined && !POSITION_MODES.includes(o.positions))
    bad(`positions ${JSON.stringify(o.positions)} is not one of ${POSITION_MODES.join(", ")}`);
  const model = o.model;
  if (
    typeof model?.fingerprint !== "string" ||
    !Number.isInteger(model.layers) ||
    !Number.isInteger(model.kvHeads) ||
    !Number.isInteger(model.headDim)
  )
    bad("no model shape and fingerprint");
  if (o.format === MANIFEST_FORMAT_2 && model !== undefined) {
    const { path, ...rest } = model as typeof model & { path?: unknown };
    o.model = {
      ...rest,
      id: chatModelRef({
        path: typeof path === "string" ? path : "unnamed",
        fingerprint: model.fingerprint,
      }).id,
    };
  } else if (typeof model?.id !== "string" || model.id === "") {
    bad("the model has no id");
  }
  const dimension = o.embedder?.dimension;
  for (const [i, e] of (o.episodes ?? []).entries()) {
    if (e?.id !== i) bad(`episode ${i} has id ${JSON.stringify(e?.id)}`);
    if (typeof e.key !== "string" || typeof e.sha256 !== "string" || !Number.isSafeInteger(e.bytes))
      bad(`episode ${i} has no key, size and checksum`);
    if (
      !Array.isArray(e.centroid) ||
      e.centroid.length !== dimension ||
      !e.centroid.every(Number.isFinite)
    )
      bad(`episode ${i}'s centroid is not ${dimension} numbers`);
    if (!Array.isArray(e.windows) || !e.windows.every((w) => Number.isSafeInteger(w) && w >= 0))
      bad(`episode ${i}'s windows are not window indices`);
  }
  if (o.format !== MANIFEST_FORMAT) o.routing = { rule: "centroid" };
  else checkRouting(o as EpisodeManifest, bad);
  return o as EpisodeManifest;
}

/**
 * The routing rule of a manifest and what it reads: the centroids, for `window`, `vote` and `lexical`
 * the window vectors (int8 views) and each window's episode index, and for `lexical` each window's
 * terms.
 *
 * @example
 * ```ts
 * const { rule, data } = manifestRouting(manifest);
 * const { episode } = routeQuestion(rule, { vector: questionVector, text: question }, data);
 * ```
 */
export function manifestRouting(manifest: EpisodeManifest): {
  rule: RoutingRule;
  data: RoutingData;
} {
  const centroids = manifest.episodes.map((e) => e.centroid);
  const routing = manifest.routing;
  if (routing.rule === "centroid") return { rule: routing, data: { centroids } };
  const windows = decodeWindowVectors(routing.windowVectors, manifest.embedder.dimension);
  const windowEpisodes = new Array<number>(windows.length).fill(-1);
  manifest.episodes.forEach((e, index) => e.windows.forEach((w) => (windowEpisodes[w] = index)));
  if (routing.rule === "lexical") {
    const windowTerms = routing.windowTerms.map(splitTerms);
    return { rule: { rule: "lexical" }, data: { centroids, windows, windowEpisodes, windowTerms } };
  }
  const rule: RoutingRule =
    routing.rule === "vote" ? { rule: "vote", k: routing.k } : { rule: "window" };
  return { rule, data: { centroids, windows, windowEpisodes } };
}

/** A window's stored terms as a list: "" has none. */
function splitTerms(joined: string): string[] {
  return joined === "" ? [] : joined.split(" ");
}

/**
 * A /4 manifest's routing: a known rule, k for `vote`, window vectors that the episodes' windows
 * partition, and for `lexical` one string of terms per window vector.
 */
function checkRouting(m: EpisodeManifest, bad: (why: string) => never): void {
  const r = m.routing as
    Partial<ManifestRouting & { k: unknown; windowVectors: unknown }> | undefined;
  if (
    typeof r !== "object" ||
    r === null ||
    !(ROUTING_RULES as readonly unknown[]).includes(r.rule)
  )
    bad(`routing ${JSON.stringify(r)} has no rule of ${ROUTING_RULES.join(", ")}`);
  if (r?.rule === "centroid") return;
  if (r?.rule === "vote" && !(Number.isInteger(r.k) && (r.k as number) >= 1))
    bad(`vote routing needs a positive integer k, not ${JSON.stringify(r.k)}`);
  if (typeof r?.windowVectors !== "string") bad(`${r?.rule} routing has no window vectors`);
  let windows = 0;
  try {
    windows = decodeWindowVectors(r?.windowVectors as string, m.embedder.dimension).length;
  } catch (e) {
    bad((e as Error).message);
  }
  if (r?.rule === "lexical") {
    const terms = r.windowTerms as unknown;
    if (!Array.isArray(terms) || !terms.every((t) => typeof t === "string"))
      bad("lexical routing has no window terms");
    if ((terms as string[]).length !== windows)
      bad(
        `lexical routing has ${(terms as string[]).length} windows' terms for ${windows} window vectors`,
      );
  }
  const seen = new Array<boolean>(windows).fill(false);
  for (const e of m.episodes) {
    for (const w of e.windows) {
      if (w >= windows || seen[w])
        bad(
          `episode ${e.id} lists window ${w}, ${w >= windows ? `beyond the ${windows} window vectors` : "listed twice"}`,
        );
      seen[w] = true;
    }
  }
  if (seen.includes(false)) bad(`window ${seen.indexOf(false)} is in no episode`);
}

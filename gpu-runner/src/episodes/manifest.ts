/**
 * The manifest of one built version of a conversation's episode caches
 * (`…/versions/{version}/manifest.json`): what the caches were built with and from, the episodes'
 * centroids for routing, and each cache's key, size and SHA-256. Written after every cache it names.
 *
 * The model is named by id and fingerprint, never by a path, so a store built on one machine is read
 * on another (`findChatModel` finds the model there).
 */
import { EpicacheError, isValidId } from "@epicache/shared";
import type { KvcDtype } from "@epicache/shared";
import { POSITION_MODES, type PositionMode } from "../prefill/positions";
import { chatModelRef, type ModelRef } from "../models";

export const MANIFEST_FORMAT = "epicache-episodes/3";
/**
 * The previous format, still read. It named the model by the builder's path, which is dropped: the
 * id is derived from the fingerprint (a registered model's id) or else the path's last part.
 */
export const MANIFEST_FORMAT_2 = "epicache-episodes/2";

export interface EpisodeManifest {
  format: typeof MANIFEST_FORMAT | typeof MANIFEST_FORMAT_2;
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
  contextTokens: number;
  /** How K and V are stored in the .kvc files. */
  dtype: KvcDtype;
  episodes: Array<{
    id: number;
    /** Object key of the .kvc file. */
    key: string;
    bytes: number;
    sha256: string;
    /** L2-normalised centroid of the episode's windows. */
    centroid: number[];
    /** Window indices (segmentation order) in the episode. */
    windows: number[];
    /** The representative windows (chronological). */
    representatives: number[];
    entries: number;
  }>;
  createdAt: string;
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
  if (o.format !== MANIFEST_FORMAT && o.format !== MANIFEST_FORMAT_2) bad(`format ${JSON.stringify(o.format)} is not ${MANIFEST_FORMAT} (or ${MANIFEST_FORMAT_2})`);
  for (const k of ["tenant", "conversation", "version"] as const) if (!isValidId(o[k])) bad(`${k} ${JSON.stringify(o[k])} is not a valid id`);
  if (!Array.isArray(o.episodes) || o.episodes.length === 0) bad("no episodes");
  if (o.positions !== undefined && !POSITION_MODES.includes(o.positions)) bad(`positions ${JSON.stringify(o.positions)} is not one of ${POSITION_MODES.join(", ")}`);
  const model = o.model;
  if (typeof model?.fingerprint !== "string" || !Number.isInteger(model.layers) || !Number.isInteger(model.kvHeads) || !Number.isInteger(model.headDim)) bad("no model shape and fingerprint");
  if (o.format === MANIFEST_FORMAT_2 && model !== undefined) {
    const { path, ...rest } = model as typeof model & { path?: unknown };
    o.model = { ...rest, id: chatModelRef({ path: typeof path === "string" ? path : "unnamed", fingerprint: model.fingerprint }).id };
  } else if (typeof model?.id !== "string" || model.id === "") {
    bad("the model has no id");
  }
  const dimension = o.embedder?.dimension;
  for (const [i, e] of (o.episodes ?? []).entries()) {
    if (e?.id !== i) bad(`episode ${i} has id ${JSON.stringify(e?.id)}`);
    if (typeof e.key !== "string" || typeof e.sha256 !== "string" || !Number.isSafeInteger(e.bytes)) bad(`episode ${i} has no key, size and checksum`);
    if (!Array.isArray(e.centroid) || e.centroid.length !== dimension || !e.centroid.every(Number.isFinite)) bad(`episode ${i}'s centroid is not ${dimension} numbers`);
  }
  return o as EpisodeManifest;
}

/**
 * A model's layer profiles, saved next to the model (one file per weights fingerprint):
 * `epicache-layer-profiles-<fingerprint>.json` beside a .gguf file, inside a checkpoint directory.
 * One profile per protocol and budget, each with the protocol's parameters and the sharpness chosen
 * on the calibration text, so that a build's layer budgets can be traced to how they were measured.
 */
import { existsSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { EpicacheError, type AllocMode } from "@epicache/shared";
import { layerBudgets, officialBudgets } from "./layer-budgets";

export const PROFILES_FORMAT = "epicache-layer-profiles/1";

/** The sensitivity protocols (calibrate.ts). */
export const SENSITIVITY_PROTOCOLS = ["keys", "output"] as const;
export type SensitivityProtocol = (typeof SENSITIVITY_PROTOCOLS)[number];

/** The allocation modes (shared/src/methods.ts): "output" chooses its α on the calibration text. */
export { ALLOC_MODES, type AllocMode } from "@epicache/shared";

export const PROTOCOL_OF: Record<Exclude<AllocMode, "uniform">, SensitivityProtocol> = {
  official: "keys",
  output: "output",
};

export interface LayerProfile {
  protocol: SensitivityProtocol;
  /** The budget (M) the squeeze used. */
  budget: number;
  /** Per layer: σ_ℓ, the key cosine ("keys"; higher is less sensitive), or KL_ℓ ("output"; higher is more). */
  signal: number[];
  /** The sharpness the rule uses: the authors' power ("keys"), or the α chosen on the calibration text ("output"). */
  sharpness: number;
  /** Each sharpness tried and the calibration text's KL to the full run under its budgets (α = 0 is uniform). */
  selection: Array<{ sharpness: number; kl: number }>;
  /** What was measured on: tokens of calibration text, block, sinks, and the text's source. */
  params: {
    tokens: number;
    blockSize: number;
    sinks: number;
    text: string;
    span?: number;
    every?: number;
  };
  seconds: number;
  measuredAt: string;
}

export interface SavedProfiles {
  format: typeof PROFILES_FORMAT;
  fingerprint: string;
  model: string;
  /** Keyed by `${protocol}@${budget}`. */
  profiles: Record<string, LayerProfile>;
}

export const profileKey = (protocol: SensitivityProtocol, budget: number) =>
  `${protocol}@${budget}`;

export function profilesPath(modelPath: string, fingerprint: string): string {
  const dir =
    existsSync(modelPath) && statSync(modelPath).isDirectory() ? modelPath : dirname(modelPath);
  return join(dir, `epicache-layer-profiles-${fingerprint}.json`);
}

/** The saved profiles of these weights (none yet: an empty set). */
export function loadProfiles(
  modelPath: string,
  fingerprint: string,
  model: string,
  layers: number,
): SavedProfiles {
  const path = profilesPath(modelPath, fingerprint);
  if (!existsSync(path)) return { format: PROFILES_FORMAT, fingerprint, model, profiles: {} };
  let saved: SavedProfiles;
  try {
    saved = JSON.parse(readFileSync(path, "utf8")) as SavedProfiles;
  } catch (e) {
    throw new EpicacheError(
      "store_invalid",
      `${path}: ${(e as Error).message}; delete it and run \`npx epicache calibrate\``,
    );
  }
  const profiles = Object.values(saved.profiles ?? {});
  if (
    saved.format !== PROFILES_FORMAT ||
    saved.fingerprint !== fingerprint ||
    profiles.some((p) => !Array.isArray(p.signal) || p.signal.length !== layers)
  ) {
    throw new EpicacheError(
      "store_invalid",
      `${path} is not a layer profile of this model; delete it and run \`npx epicache calibrate\``,
    );
  }
  return saved;
}

/** Adds (or replaces) one profile in the file, written atomically. */
export function saveProfile(
  modelPath: string,
  saved: SavedProfiles,
  profile: LayerProfile,
): string {
  const path = profilesPath(modelPath, saved.fingerprint);
  saved.profiles[profileKey(profile.protocol, profile.budget)] = profile;
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, `${JSON.stringify(saved, null, 1)}\n`);
  renameSync(tmp, path);
  return path;
}

/** Per-layer budgets (entries per KV head) a profile gives at its budget; `sharpness` overrides the profile's. */
export function budgetsFromProfile(profile: LayerProfile, sharpness = profile.sharpness): number[] {
  return profile.protocol === "keys"
    ? officialBudgets(profile.signal, profile.budget, sharpness)
    : layerBudgets(profile.signal, profile.budget, { alpha: sharpness });
}

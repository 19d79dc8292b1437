/**
 * A model's layer profiles, saved next to the model (one file per weights fingerprint):
 * `epicache-layer-profiles-<fingerprint>.json` beside a .gguf file, inside a checkpoint directory.
 * One profile per protocol and budget, each with the protocol's parameters and the sharpness chosen
 * on the calibration text, so that a build's layer budgets can be traced to how they were measured.
 */
import { existsSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
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
  const saved = readProfiles(path);
  if (!fitsModel(saved, fingerprint, layers)) {
    throw new EpicacheError(
      "store_invalid",
      `${path} is not a layer profile of this model; delete it and run \`npx epicache calibrate\``,
    );
  }
  return saved;
}

/**
 * Profiles measured on the registry's models with `epicache calibrate` and shipped with the code
 * (`profiles/<model id>.json`), so that a first build with a calibrated allocation does not spend
 * a quarter of an hour or more measuring one.
 */
export const SHIPPED_PROFILES_DIR = fileURLToPath(new URL("./profiles/", import.meta.url));

/** The shipped profiles of a registry model, if any were measured on exactly these weights. */
export function shippedProfiles(
  model: string,
  fingerprint: string,
  layers: number,
  dir = SHIPPED_PROFILES_DIR,
): SavedProfiles | null {
  const path = join(dir, `${model}.json`);
  if (!existsSync(path)) return null;
  const saved = readProfiles(path);
  return fitsModel(saved, fingerprint, layers) ? saved : null;
}

function readProfiles(path: string): SavedProfiles {
  try {
    return JSON.parse(readFileSync(path, "utf8")) as SavedProfiles;
  } catch (e) {
    throw new EpicacheError(
      "store_invalid",
      `${path}: ${(e as Error).message}; delete it and run \`npx epicache calibrate\``,
    );
  }
}

function fitsModel(saved: SavedProfiles, fingerprint: string, layers: number): boolean {
  return (
    saved.format === PROFILES_FORMAT &&
    saved.fingerprint === fingerprint &&
    Object.values(saved.profiles ?? {}).every(
      (p) => Array.isArray(p.signal) && p.signal.length === layers,
    )
  );
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

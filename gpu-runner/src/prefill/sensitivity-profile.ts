/**
 * A model's layer-sensitivity profile, saved next to the model (one file per weights fingerprint):
 * `epicache-sensitivity-<fingerprint>.json` beside a .gguf file, inside a checkpoint directory.
 */
import { existsSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { EpicacheError } from "@epicache/shared";
import type { SensitivityProfile } from "./calibrate";

export interface SavedProfile extends SensitivityProfile {
  fingerprint: string;
  model: string;
  budget: number;
  blockSize: number;
  sinks: number;
  tokens: number;
  measuredAt: string;
}

export function profilePath(modelPath: string, fingerprint: string): string {
  const dir = existsSync(modelPath) && statSync(modelPath).isDirectory() ? modelPath : dirname(modelPath);
  return join(dir, `epicache-sensitivity-${fingerprint}.json`);
}

/** The saved profile of these weights, or null when none was measured. */
export function loadProfile(modelPath: string, fingerprint: string, layers: number): SavedProfile | null {
  const path = profilePath(modelPath, fingerprint);
  if (!existsSync(path)) return null;
  let p: SavedProfile;
  try {
    p = JSON.parse(readFileSync(path, "utf8")) as SavedProfile;
  } catch (e) {
    throw new EpicacheError("store_invalid", `${path}: ${(e as Error).message}; delete it and run \`npx epicache calibrate\``);
  }
  if (p.fingerprint !== fingerprint || !Array.isArray(p.sensitivity) || p.sensitivity.length !== layers) {
    throw new EpicacheError("store_invalid", `${path} is not a profile of this model; delete it and run \`npx epicache calibrate\``);
  }
  return p;
}

export function saveProfile(modelPath: string, profile: SavedProfile): string {
  const path = profilePath(modelPath, profile.fingerprint);
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, `${JSON.stringify(profile, null, 1)}\n`);
  renameSync(tmp, path);
  return path;
}

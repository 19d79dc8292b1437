/**
 * The path of a pulled model for tests that need the real one, or undefined so they skip. CI sets
 * EPICACHE_REQUIRE_MODELS=1, where a missing model is an error instead of a skip.
 */
import { existsSync } from "node:fs";
import { findModel, modelPath } from "../model-registry";

export function pulledModel(name: "chat" | "embedder"): string | undefined {
  const spec = findModel(name);
  const path = spec ? modelPath(spec) : undefined;
  if (path && existsSync(path)) return path;
  if (process.env.EPICACHE_REQUIRE_MODELS === "1") {
    throw new Error(
      `model ${name} is required (EPICACHE_REQUIRE_MODELS=1) but not pulled: run \`npx epicache models pull\``,
    );
  }
  return undefined;
}

/** Test-title suffix for suites that skip without the real model. */
export const NEEDS_PULL = "(skips without `npx epicache models pull`)";

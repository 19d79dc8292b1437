/** Where Epicache keeps models, built graphs and stores on this machine. */
import { fileURLToPath } from "node:url";
import { resolve } from "node:path";

/** The repository root (this file lives in gpu-runner/src/). */
export const REPO_ROOT = resolve(fileURLToPath(new URL("../..", import.meta.url)));

/** `$EPICACHE_HOME`, default `.epicache/` in the repository. */
export function epicacheHome(env: NodeJS.ProcessEnv = process.env): string {
  return resolve(
    env.EPICACHE_HOME && env.EPICACHE_HOME.length > 0
      ? env.EPICACHE_HOME
      : resolve(REPO_ROOT, ".epicache"),
  );
}

export function modelsDir(env: NodeJS.ProcessEnv = process.env): string {
  return resolve(epicacheHome(env), "models");
}

export function graphsDir(env: NodeJS.ProcessEnv = process.env): string {
  return resolve(epicacheHome(env), "graphs");
}

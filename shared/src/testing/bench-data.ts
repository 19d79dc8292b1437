/// <reference types="vite/types/importMeta.d.ts" />
/**
 * The real benchmark files (LoCoMo, REALTALK) for tests that read them when they are present: the
 * `shared/data/` folder next to the repository (`<repo>/../shared/data`, see its README). Test-only and
 * Vitest-only: `import.meta.glob` is expanded by Vite when the test is transformed, so shared/ needs no
 * file-system API (no `node:` import), and a missing folder is just an empty list, which tests turn into
 * a skip whose title says why ({@link NEEDS_BENCH_DATA}). CI sets EPICACHE_REQUIRE_DATA=1 (read through
 * `import.meta.env`, which Vitest fills from the environment), where a missing file is an error
 * instead of a skip. Not exported from `@epicache/shared`.
 */

/** One benchmark file: its name (`Chat_1_Emi_Elise.json`) and a reader of its text. */
export interface BenchFile {
  readonly name: string;
  readonly text: () => Promise<string>;
}

// The patterns must be literals (Vite expands them at transform time), relative to this file.
const locomo = import.meta.glob<string>("../../../../shared/data/locomo/*.json", {
  query: "?raw",
  import: "default",
});
const realtalk = import.meta.glob<string>("../../../../shared/data/realtalk/Chat_*.json", {
  query: "?raw",
  import: "default",
});

function files(found: Record<string, () => Promise<string>>): BenchFile[] {
  return Object.entries(found)
    .map(([path, text]) => ({ name: path.slice(path.lastIndexOf("/") + 1), text }))
    .sort((a, b) => a.name.localeCompare(b.name, "en", { numeric: true }));
}

const FILES = {
  /** LoCoMo files in the original `locomo10.json` schema (`locomo-dev2.json`: conv-26 and conv-30). */
  locomo: files(locomo),
  /** REALTALK files (`Chat_1_Emi_Elise.json` … `Chat_10_Fahim_Muhhamed.json`), in numeric order. */
  realtalk: files(realtalk),
};

/** Which benchmark: the folder of `../shared/data` its files are in. */
export type Benchmark = keyof typeof FILES;

function missing(what: string): undefined {
  if (import.meta.env.EPICACHE_REQUIRE_DATA === "1") {
    throw new Error(
      `${what} is required (EPICACHE_REQUIRE_DATA=1) but missing: put the benchmark data in ../shared/data beside the repository`,
    );
  }
  return undefined;
}

/**
 * A benchmark's files, or none without the folder (so the tests that need them skip), unless
 * EPICACHE_REQUIRE_DATA=1, where that is an error.
 */
export function benchFiles(benchmark: Benchmark): readonly BenchFile[] {
  const found = FILES[benchmark];
  return found.length > 0 ? found : (missing(`../shared/data/${benchmark}/`) ?? []);
}

/** One benchmark file by name, or undefined (so the test skips), unless EPICACHE_REQUIRE_DATA=1. */
export function benchFile(benchmark: Benchmark, name: string): BenchFile | undefined {
  return (
    FILES[benchmark].find((f) => f.name === name) ?? missing(`../shared/data/${benchmark}/${name}`)
  );
}

/** Test-title suffix for tests that skip without the benchmark data. */
export const NEEDS_BENCH_DATA =
  "(skips without the benchmark data in ../shared/data beside the repository)";

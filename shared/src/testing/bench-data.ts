/// <reference types="vite/types/importMeta.d.ts" />
/**
 * The real benchmark files (LoCoMo, REALTALK) for tests that read them when they are present: the
 * `shared/data/` folder next to the repository (`<repo>/../shared/data`, see its README). Test-only and
 * Vitest-only: `import.meta.glob` is expanded by Vite when the test is transformed, so shared/ needs no
 * file-system API (no `node:` import), and a missing folder is just an empty list, which tests turn into
 * a skip whose title says why ({@link NEEDS_BENCH_DATA}). Not exported from `@epicache/shared`.
 */

/** One benchmark file: its name (`Chat_1_Emi_Elise.json`) and a reader of its text. */
export interface BenchFile {
  readonly name: string;
  readonly text: () => Promise<string>;
}

// The patterns must be literals (Vite expands them at transform time), relative to this file.
const locomo = import.meta.glob<string>("../../../../shared/data/locomo/*.json", { query: "?raw", import: "default" });
const realtalk = import.meta.glob<string>("../../../../shared/data/realtalk/Chat_*.json", { query: "?raw", import: "default" });

function files(found: Record<string, () => Promise<string>>): BenchFile[] {
  return Object.entries(found)
    .map(([path, text]) => ({ name: path.slice(path.lastIndexOf("/") + 1), text }))
    .sort((a, b) => a.name.localeCompare(b.name, "en", { numeric: true }));
}

/** LoCoMo files in the original `locomo10.json` schema (`locomo-dev2.json`: conv-26 and conv-30). */
export const LOCOMO_FILES: readonly BenchFile[] = files(locomo);

/** REALTALK files (`Chat_1_Emi_Elise.json` … `Chat_10_Fahim_Muhhamed.json`), in numeric order. */
export const REALTALK_FILES: readonly BenchFile[] = files(realtalk);

/** Test-title suffix for tests that skip without the benchmark data. */
export const NEEDS_BENCH_DATA = "(skips without the benchmark data in ../shared/data beside the repository)";

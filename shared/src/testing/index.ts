/** Test helpers for shared/ (not exported from `@epicache/shared`). */
export { LOCOMO_FILES, NEEDS_BENCH_DATA, REALTALK_FILES, type BenchFile } from "./bench-data";
export { thrown } from "./thrown";

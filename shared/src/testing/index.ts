/** Test helpers for shared/ (not exported from `@epicache/shared`). */
export {
  benchFile,
  benchFiles,
  NEEDS_BENCH_DATA,
  type Benchmark,
  type BenchFile,
} from "./bench-data";
export { thrown } from "./thrown";

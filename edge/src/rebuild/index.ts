/** Rebuilds: applying a runner job's status (callback or polling) to its version. */
export { applyJob, refreshRebuild } from "./apply-job";

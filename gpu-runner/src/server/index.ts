/** The runner as an HTTP service (docs/design.md §2, §5). */
export { runnerApp } from "./app";
export { loadRunnerConfig, RunnerConfigSchema, secretPath, type RunnerConfig } from "./config";
export { ModelSlots, type Priority } from "./model-slots";
export { Runner } from "./runner";
export { startRunner, type RunningRunner } from "./serve";

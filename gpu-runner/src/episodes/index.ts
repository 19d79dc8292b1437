export {
  clusterEpisodes,
  representatives,
  restartSeed,
  type ClusterOptions,
  type EpisodeClustering,
  type KClamp,
} from "./cluster";
export {
  MANIFEST_FORMAT,
  manifestRouting,
  parseManifest,
  type BuildRecord,
  type EpisodeManifest,
  type ManifestRouting,
  type UpdateState,
} from "./manifest";
export {
  ACTIVE_FORMAT,
  EpisodeStore,
  toKvc,
  type ActivePointer,
  type GcResult,
  type PublishResult,
  type StoredEpisode,
} from "./episode-store";
export { LoadedEpisodes, type LoadedStats } from "./loaded-episodes";
export {
  buildEpisodes,
  DEFAULT_N_MEDOID,
  rebuildOptions,
  type BuildOptions,
  type BuildReport,
  type BuildTarget,
} from "./build-episodes";
export { askEpisodes, type AskResult } from "./ask-episodes";
export { questionPrompt, ANSWER_INSTRUCTION, DATE_HINT } from "./answer-prompt";
export {
  continueEpisodes,
  needsFull,
  updateEpisodes,
  type UpdatePolicy,
  type UpdateReport,
} from "./update-episodes";
export { updateOrBuild, type UpdateOrBuildResult } from "./update-or-build";

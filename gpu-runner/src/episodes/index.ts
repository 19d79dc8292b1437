export { clusterEpisodes, representatives, restartSeed, type ClusterOptions, type EpisodeClustering, type KClamp } from "./cluster";
export * from "./episode-dir";
export { buildEpisodes, type BuildOptions, type BuildReport } from "./build-episodes";
export { askEpisodes, type AskResult } from "./ask-episodes";
export { questionPrompt, ANSWER_INSTRUCTION, DATE_HINT } from "./answer-prompt";
export { calibrate, profileFor, type CalibrationOptions } from "./calibration";

/** Answering questions: the active manifest, the question's embedding, the episode and the runner. */
export { activeManifest, clearManifestCache, type RoutingManifest } from "./manifest-cache";
export { WORKERS_AI_EMBEDDER, embedQuestion, workersAiServes } from "./embed-question";

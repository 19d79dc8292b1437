export { MODELS, ALIASES, findModel, type ModelSpec, type PinnedArchive } from "./registry";
export {
  pullModel,
  pullDefaults,
  requireModel,
  modelPath,
  isPulled,
  type PullOptions,
  type PullResult,
} from "./pull";
export {
  findChatModel,
  chatModelRef,
  pinnedFingerprint,
  type ModelRef,
  type FindChatModelOptions,
} from "./find-chat-model";

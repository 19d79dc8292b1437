/** Ids and object keys of the episode store (docs/design.md §3): every key is built from validated ids. */
export { isValidId, newVersionId, validateId, type IdKind } from "./ids";
export {
  activeKey,
  conversationPrefix,
  episodeKey,
  manifestKey,
  versionOfKey,
  versionPrefix,
} from "./keys";

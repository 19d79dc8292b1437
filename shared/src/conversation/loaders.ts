/**
 * The conversation file loaders alone (LoCoMo, REALTALK, JSONL), without zod, the store or the
 * codecs: `@epicache/shared/loaders`, for a browser bundle such as the console's.
 *
 * @example
 * ```ts
 * import { loadConversation } from "@epicache/shared/loaders";
 * const { conversation } = loadConversation(await file.text());
 * ```
 */
export type { Conversation, LoadedConversation, Session, Turn } from "./conversation";
export {
  CONVERSATION_FORMATS,
  detectConversationFormat,
  loadConversation,
  type ConversationFormat,
  type LoadConversationOptions,
} from "./load-conversation";
export { locomoSampleIds } from "./locomo";

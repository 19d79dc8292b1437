/**
 * Conversations: the model (conversation, sessions, turns, QA items), loaders for LoCoMo JSON, REALTALK
 * JSON and plain JSONL, segmentation into windows, the context text fed to the model, routing a
 * question to an episode (by BM25 over the windows' terms, centroid, nearest window or a vote of
 * windows, with the window vectors stored as int8) and the token F1 used by evaluation.
 */
export type { Conversation, LoadedConversation, QaItem, Session, Turn } from "./conversation";
export { loadLocomo, locomoSampleIds, type LoadLocomoOptions } from "./locomo";
export { loadRealtalk, type LoadRealtalkOptions } from "./realtalk";
export { loadJsonl, type LoadJsonlOptions } from "./jsonl";
export {
  conversationFromMessages,
  type FromMessagesOptions,
  type Message,
  type SessionCursor,
} from "./messages";
export {
  CONVERSATION_FORMATS,
  detectConversationFormat,
  loadConversation,
  type ConversationFormat,
  type LoadConversationOptions,
} from "./load-conversation";
export { formatTurnLine } from "./turn-line";
export { segmentWindows, type ConversationWindow } from "./segment-windows";
export { medoidCount, parseMedoidCount, type MedoidCount } from "./medoid-count";
export {
  defaultContextHeader,
  renderContext,
  renderContinuation,
  type RenderContextOptions,
} from "./render-context";
export { cutToSessions } from "./cut-to-sessions";
export { recentTurns } from "./recent-turns";
export { selectSessions } from "./select-sessions";
export { cosine, l2Normalize, type Vector } from "./vectors";
export { nearestCentroid, type NearestCentroid } from "./nearest-centroid";
export {
  DEFAULT_ROUTING,
  DEFAULT_VOTE_K,
  ROUTING_RULES,
  routeQuestion,
  type RoutedQuestion,
  type RoutingData,
  type RoutingQuestion,
  type RoutingRule,
} from "./route-question";
export { lexicalTerms, STOP_WORDS } from "./lexical-terms";
export { BM25_DEFAULTS, bm25Scores, type Bm25Parameters } from "./bm25";
export { decodeWindowVectors, encodeWindowVectors } from "./window-vectors";
export { normalizeAnswer, tokenF1 } from "./token-f1";

/**
 * @epicache/client: a typed client of Epicache's edge API, on `fetch` (Node 20, browsers, Workers).
 * Its types are generated from the edge's OpenAPI document (`npm run client:generate`).
 *
 * @example
 * ```ts
 * import { EpicacheClient } from "@epicache/client";
 * const client = new EpicacheClient({ baseUrl: "http://127.0.0.1:8787", apiKey });
 * const { answer, episode } = await client.ask("conv-26", { question: "What did Caroline research?" });
 * ```
 */
export {
  EpicacheClient,
  type CallOptions,
  type EpicacheClientOptions,
  type TriggerRebuildOptions,
  type TriggerRebuildResult,
  type WaitForRebuildOptions,
} from "./client";
export {
  EpicacheApiError,
  EpicacheRebuildError,
  type ApiErrorCode,
  type ClientErrorCode,
} from "./errors";
export { ServerSentEventParser, serverSentEvents, type ServerSentEvent } from "./sse";
export type * from "./types";
/** Standard Webhooks signing, for a sender of rebuild webhooks that does not use the client. */
export { signWebhook, type WebhookMessage } from "@epicache/shared/webhooks";

/**
 * The API's request and response types, each taken from the generated `paths` (the route's own
 * request body or response) or `components` (generated/api.ts, from the edge's OpenAPI document):
 * a route whose schema changes changes these, and the client's code stops compiling where it no
 * longer fits.
 */
import type { components, paths } from "./generated/api";

export type { components, paths } from "./generated/api";

type Json<T> = T extends { content: { "application/json": infer Body } } ? Body : never;
type Operation<P extends keyof paths, M extends "get" | "post"> = NonNullable<paths[P][M]>;
type RequestBody<P extends keyof paths, M extends "get" | "post"> = Json<
  NonNullable<Operation<P, M>["requestBody"]>
>;
type ResponseBody<
  P extends keyof paths,
  M extends "get" | "post",
  S extends keyof Operation<P, M>["responses"],
> = Json<Operation<P, M>["responses"][S]>;

type Schemas = components["schemas"];

/** `POST /v1/tenants`: `{name, limits?}`. */
export type CreateTenantRequest = RequestBody<"/v1/tenants", "post">;
/** `{tenantId, apiKey, webhookSecret}`: the key and the secret are shown once. */
export type CreateTenantResponse = ResponseBody<"/v1/tenants", "post", 201>;
/** A tenant's own limits (the Worker's defaults where not given). */
export type TenantLimits = NonNullable<CreateTenantRequest["limits"]>;

/** One message to append: `{id, speaker, text, timestamp?, session?}`. */
export type Message = RequestBody<"/v1/conversations/{id}/messages", "post">["messages"][number];
/** `{appended, duplicates, messageCount}`. */
export type AppendMessagesResponse = ResponseBody<"/v1/conversations/{id}/messages", "post", 200>;

/** `GET /v1/conversations/{id}`: the message count, the active version and the newest rebuild. */
export type Conversation = ResponseBody<"/v1/conversations/{id}", "get", 200>;
/** How the active version was built. */
export type ActiveVersion = NonNullable<Conversation["active"]>;
/** The newest rebuild: status, kind, stage, progress (percent) and ETA. */
export type RebuildState = NonNullable<Conversation["rebuild"]>;

/** `GET /v1/conversations/{id}/versions`: `{versions, more}`, newest first. */
export type VersionList = ResponseBody<"/v1/conversations/{id}/versions", "get", 200>;
/** A row of the history: the rebuild's state, `active`, and what it built (`contextTokens`, `routing`, `episodeCount`). */
export type VersionSummary = Schemas["VersionSummary"];
/** `GET /v1/conversations/{id}/versions/{version}`: the version and its `episodes` (null until it succeeded). */
export type VersionDetail = ResponseBody<"/v1/conversations/{id}/versions/{version}", "get", 200>;
/** An episode of a version: `{id, windows, topTerms, cacheBytes, entries, layerEntries, representative}` (each null where the edge does not keep it). */
export type Episode = Schemas["Episode"];

/** `POST /v1/conversations/{id}/query`: `{question, maxTokens?, stream?}`. */
export type QueryRequest = RequestBody<"/v1/conversations/{id}/query", "post">;
/** What {@link EpicacheClient.ask} and `askStream` take: the question and `maxTokens`. */
export type AskRequest = Omit<QueryRequest, "stream">;
/** `{answer, episode, version, tokens, routing}`. */
export type QueryResponse = ResponseBody<"/v1/conversations/{id}/query", "post", 200>;
/** How a question was routed: `{rule, scores: [{episode, score}]}`, the chosen episode scoring highest. */
export type QueryRouting = Schemas["QueryRouting"];

/** The data of a streamed answer's events. */
export type QueryStreamMeta = Schemas["QueryStreamMeta"];
export type QueryStreamToken = Schemas["QueryStreamToken"];
export type QueryStreamDone = Schemas["QueryStreamDone"];

/**
 * An event of a streamed answer: `meta` first, then `token`s, then `done` (an `error` event is
 * thrown as an {@link EpicacheApiError} instead).
 */
export type AnswerEvent =
  | { event: "meta"; data: QueryStreamMeta }
  | { event: "token"; data: QueryStreamToken }
  | { event: "done"; data: QueryStreamDone };

/** `POST /v1/webhooks/{tenantId}/rebuild`: `{conversationId}`. */
export type RebuildWebhookRequest = RequestBody<"/v1/webhooks/{tenantId}/rebuild", "post">;
/** `{conversationId, version, status, duplicate, followUp}` (the same for 202 and 200). */
export type RebuildWebhookResponse = ResponseBody<
  "/v1/webhooks/{tenantId}/rebuild",
  "post",
  202 | 200
>;

/** `{error: {code, message, requestId}}`. */
export type ErrorBody = Schemas["Error"];

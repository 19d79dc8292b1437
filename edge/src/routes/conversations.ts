/**
 * A tenant's conversations: `GET /v1/conversations/{id}` and `POST /v1/conversations/{id}/messages`.
 * Every lookup is by (tenant of the API key, id): another tenant's conversation is a 404.
 */
import { OpenAPIHono, createRoute, z } from "@hono/zod-openapi";
import { EpicacheError } from "@epicache/shared";
import { requireTenant } from "../auth";
import { ensureConversation, getConversation } from "../db/conversations";
import { appendMessages, existingClientIds, messageBytes } from "../db/messages";
import { limitsOf } from "../db/tenants";
import { getVersion, latestVersion, type VersionRecord } from "../db/versions";
import type { AppEnv } from "../env";
import { refreshRebuild } from "../rebuild";
import {
  AppendMessagesRequest,
  AppendMessagesResponse,
  ConversationResponse,
  Id,
  errorResponses,
} from "./schemas";

const params = z.object({ id: Id.openapi({ param: { name: "id", in: "path" } }) });

const getRoute = createRoute({
  method: "get",
  path: "/v1/conversations/{id}",
  tags: ["conversations"],
  summary:
    "A conversation: its message count, active version and newest rebuild (how each is built)",
  security: [{ apiKey: [] }],
  middleware: [requireTenant] as const,
  request: { params },
  responses: {
    200: {
      description: "The conversation",
      content: { "application/json": { schema: ConversationResponse } },
    },
    ...errorResponses(400, 401, 404, 429),
  },
});

const appendRoute = createRoute({
  method: "post",
  path: "/v1/conversations/{id}/messages",
  tags: ["conversations"],
  summary: "Append messages (idempotent by message id)",
  description:
    "Creates the conversation on its first messages. Messages whose ids the conversation already holds are skipped, so a retried request appends nothing twice; the others are appended in order after the last message. " +
    "A conversation holds at most MAX_MESSAGES_PER_CONVERSATION messages (403 `limit_exceeded`) and MAX_TRANSCRIPT_BYTES bytes of transcript as a rebuild sends it (413 `payload_too_large`), so that a full rebuild of it always fits in what a runner takes.",
  security: [{ apiKey: [] }],
  middleware: [requireTenant] as const,
  request: {
    params,
    body: { required: true, content: { "application/json": { schema: AppendMessagesRequest } } },
  },
  responses: {
    200: {
      description: "What was appended",
      content: { "application/json": { schema: AppendMessagesResponse } },
    },
    ...errorResponses(400, 401, 403, 413, 429),
  },
});

function rebuildState(v: VersionRecord | null) {
  if (v === null) return null;
  return {
    version: v.version,
    status: v.status,
    kind: v.kind,
    reason: v.reason,
    baseVersion: v.baseVersion,
    messageCount: v.messageCount,
    stage: v.stage,
    progress: v.percent,
    etaSeconds: v.etaSeconds,
    error: v.error,
    createdAt: v.createdAt,
    updatedAt: v.updatedAt,
  };
}

function activeState(v: VersionRecord | null) {
  return v === null
    ? null
    : {
        version: v.version,
        kind: v.kind,
        reason: v.reason,
        baseVersion: v.baseVersion,
        messageCount: v.messageCount,
      };
}

/**
 * The conversation routes.
 *
 * @example
 * ```sh
 * curl -s -X POST http://127.0.0.1:8787/v1/conversations/conv-26/messages -H "authorization: Bearer $API_KEY" \
 *   -H 'content-type: application/json' -d '{"messages": [{"id": "m1", "speaker": "Ann", "text": "Hi!"}]}'
 * # {"appended":1,"duplicates":0,"messageCount":1}
 * curl -s http://127.0.0.1:8787/v1/conversations/conv-26 -H "authorization: Bearer $API_KEY"
 * # {"id":"conv-26","messageCount":1,"activeVersion":null,"active":null,"rebuild":null,"followUp":false,"transcriptBytes":40}
 * ```
 */
export const conversationRoutes = new OpenAPIHono<AppEnv>()
  .openapi(getRoute, async (c) => {
    const tenant = c.var.tenant;
    const { id } = c.req.valid("param");
    const conversation = await getConversation(c.env.DB, tenant.id, id);
    if (conversation === null) throw new EpicacheError("not_found", `no conversation ${id}`);
    let rebuild = await latestVersion(c.env.DB, tenant.id, id);
    let current = conversation;
    // A submitted job whose callback has not come is asked for its status (polling); once it
    // settles, the active version may have moved and a follow-up may have started.
    if (rebuild?.status === "submitted") {
      const refreshed = await refreshRebuild(c.env, c.var.config, tenant.id, id, rebuild);
      if (refreshed.status !== "submitted") {
        rebuild = (await latestVersion(c.env.DB, tenant.id, id)) ?? refreshed;
        current = (await getConversation(c.env.DB, tenant.id, id)) ?? conversation;
      } else rebuild = refreshed;
    }
    const active =
      current.activeVersion === null
        ? null
        : await getVersion(c.env.DB, tenant.id, id, current.activeVersion);
    return c.json(
      {
        id,
        messageCount: current.messageCount,
        activeVersion: current.activeVersion,
        active: activeState(active),
        rebuild: rebuildState(rebuild),
        followUp: current.followUp,
        transcriptBytes: current.transcriptBytes,
      },
      200,
    );
  })
  .openapi(appendRoute, async (c) => {
    const tenant = c.var.tenant;
    const config = c.var.config;
    const { id } = c.req.valid("param");
    const { messages } = c.req.valid("json");
    if (messages.length > config.maxMessagesPerRequest) {
      throw new EpicacheError(
        "payload_too_large",
        `${messages.length} messages in one request: at most ${config.maxMessagesPerRequest}`,
      );
    }
    const seen = new Set<string>();
    messages.forEach((m, i) => {
      if (m.text.length > config.maxMessageChars)
        throw new EpicacheError(
          "payload_too_large",
          `messages[${i}].text has ${m.text.length} characters: at most ${config.maxMessageChars}`,
        );
      if (seen.has(m.id))
        throw new EpicacheError(
          "invalid_argument",
          `messages[${i}].id ${JSON.stringify(m.id)} appears twice in the request`,
        );
      seen.add(m.id);
    });
    const limits = limitsOf(tenant, config.limits);
    const now = new Date().toISOString();
    const conversation = await ensureConversation(
      c.env.DB,
      tenant.id,
      id,
      limits.maxConversations,
      now,
    );
    if (conversation === null)
      throw new EpicacheError(
        "limit_exceeded",
        `the tenant has ${limits.maxConversations} conversations, its limit`,
      );
    const existing = await existingClientIds(c.env.DB, tenant.id, id, [...seen]);
    const fresh = messages.filter((m) => !existing.has(m.id));
    const tooMany = (count: number) =>
      new EpicacheError(
        "limit_exceeded",
        `the conversation holds ${count} messages; ${fresh.length} more would pass its limit of ${limits.maxMessagesPerConversation}`,
      );
    // The transcript is capped so that a full rebuild of it fits in one request to a runner (a
    // rebuild that cannot continue its base sends the whole transcript).
    const tooBig = (bytes: number) =>
      new EpicacheError(
        "payload_too_large",
        `the conversation's transcript is ${bytes} bytes; these ${fresh.length} messages (${fresh.reduce((n, m) => n + messageBytes(m), 0)} bytes) would pass its limit of ${config.maxTranscriptBytes} bytes, what one rebuild can send to a runner`,
      );
    if (conversation.messageCount + fresh.length > limits.maxMessagesPerConversation)
      throw tooMany(conversation.messageCount);
    if (
      conversation.transcriptBytes + fresh.reduce((n, m) => n + messageBytes(m), 0) >
      config.maxTranscriptBytes
    )
      throw tooBig(conversation.transcriptBytes);
    if (fresh.length === 0)
      return c.json(
        { appended: 0, duplicates: messages.length, messageCount: conversation.messageCount },
        200,
      );
    // Checked again inside the append's transaction: concurrent appends near a limit cannot pass it together.
    const result = await appendMessages(c.env.DB, tenant.id, id, fresh, now, {
      maxMessages: limits.maxMessagesPerConversation,
      maxBytes: config.maxTranscriptBytes,
    });
    if (result.refused === "messages") throw tooMany(result.messageCount);
    if (result.refused === "bytes") throw tooBig(result.transcriptBytes);
    return c.json(
      {
        appended: result.appended,
        duplicates: messages.length - result.appended,
        messageCount: result.messageCount,
      },
      200,
    );
  });

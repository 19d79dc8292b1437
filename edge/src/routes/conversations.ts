/**
 * A tenant's conversations: `GET /v1/conversations/{id}` and `POST /v1/conversations/{id}/messages`.
 * Every lookup is by (tenant of the API key, id): another tenant's conversation is a 404.
 */
import { OpenAPIHono, createRoute, z } from "@hono/zod-openapi";
import { EpicacheError } from "@epicache/shared";
import { requireTenant } from "../auth";
import { ensureConversation, getConversation } from "../db/conversations";
import { appendMessages, existingClientIds } from "../db/messages";
import { limitsOf } from "../db/tenants";
import { latestVersion, type VersionRecord } from "../db/versions";
import type { AppEnv } from "../env";
import { refreshRebuild } from "../rebuild";
import { AppendMessagesRequest, AppendMessagesResponse, ConversationResponse, Id, errorResponses } from "./schemas";

const params = z.object({ id: Id.openapi({ param: { name: "id", in: "path" } }) });

const getRoute = createRoute({
  method: "get",
  path: "/v1/conversations/{id}",
  tags: ["conversations"],
  summary: "A conversation: its message count, active version and newest rebuild",
  security: [{ apiKey: [] }],
  middleware: [requireTenant] as const,
  request: { params },
  responses: {
    200: { description: "The conversation", content: { "application/json": { schema: ConversationResponse } } },
    ...errorResponses(400, 401, 404, 429),
  },
});

const appendRoute = createRoute({
  method: "post",
  path: "/v1/conversations/{id}/messages",
  tags: ["conversations"],
  summary: "Append messages (idempotent by message id)",
  description:
    "Creates the conversation on its first messages. Messages whose ids the conversation already holds are skipped, so a retried request appends nothing twice; the others are appended in order after the last message.",
  security: [{ apiKey: [] }],
  middleware: [requireTenant] as const,
  request: { params, body: { required: true, content: { "application/json": { schema: AppendMessagesRequest } } } },
  responses: {
    200: { description: "What was appended", content: { "application/json": { schema: AppendMessagesResponse } } },
    ...errorResponses(400, 401, 403, 413, 429),
  },
});

function rebuildState(v: VersionRecord | null) {
  if (v === null) return null;
  return { version: v.version, status: v.status, stage: v.stage, progress: v.percent, etaSeconds: v.etaSeconds, error: v.error, createdAt: v.createdAt, updatedAt: v.updatedAt };
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
 * # {"id":"conv-26","messageCount":1,"activeVersion":null,"rebuild":null}
 * ```
 */
export const conversationRoutes = new OpenAPIHono<AppEnv>()
  .openapi(getRoute, async (c) => {
    const tenant = c.var.tenant;
    const { id } = c.req.valid("param");
    const conversation = await getConversation(c.env.DB, tenant.id, id);
    if (conversation === null) throw new EpicacheError("not_found", `no conversation ${id}`);
    let rebuild = await latestVersion(c.env.DB, tenant.id, id);
    // A submitted job whose callback has not come is asked for its status (polling).
    if (rebuild?.status === "submitted") {
      rebuild = await refreshRebuild(c.env.DB, c.var.config, tenant.id, id, rebuild);
    }
    const fresh = rebuild?.status === "succeeded" ? await getConversation(c.env.DB, tenant.id, id) : conversation;
    return c.json({ id, messageCount: conversation.messageCount, activeVersion: (fresh ?? conversation).activeVersion, rebuild: rebuildState(rebuild) }, 200);
  })
  .openapi(appendRoute, async (c) => {
    const tenant = c.var.tenant;
    const config = c.var.config;
    const { id } = c.req.valid("param");
    const { messages } = c.req.valid("json");
    if (messages.length > config.maxMessagesPerRequest) {
      throw new EpicacheError("payload_too_large", `${messages.length} messages in one request: at most ${config.maxMessagesPerRequest}`);
    }
    const seen = new Set<string>();
    messages.forEach((m, i) => {
      if (m.text.length > config.maxMessageChars) throw new EpicacheError("payload_too_large", `messages[${i}].text has ${m.text.length} characters: at most ${config.maxMessageChars}`);
      if (seen.has(m.id)) throw new EpicacheError("invalid_argument", `messages[${i}].id ${JSON.stringify(m.id)} appears twice in the request`);
      seen.add(m.id);
    });
    const limits = limitsOf(tenant, config.limits);
    const now = new Date().toISOString();
    const conversation = await ensureConversation(c.env.DB, tenant.id, id, limits.maxConversations, now);
    if (conversation === null) throw new EpicacheError("limit_exceeded", `the tenant has ${limits.maxConversations} conversations, its limit`);
    const existing = await existingClientIds(c.env.DB, tenant.id, id, [...seen]);
    const fresh = messages.filter((m) => !existing.has(m.id));
    // Checked before appending; two concurrent appends near the limit can both pass (D1 has no
    // conditional abort inside a batch), overshooting by at most one request's messages.
    if (conversation.messageCount + fresh.length > limits.maxMessagesPerConversation) {
      throw new EpicacheError("limit_exceeded", `the conversation holds ${conversation.messageCount} messages; ${fresh.length} more would pass its limit of ${limits.maxMessagesPerConversation}`);
    }
    if (fresh.length === 0) return c.json({ appended: 0, duplicates: messages.length, messageCount: conversation.messageCount }, 200);
    const { appended, messageCount } = await appendMessages(c.env.DB, tenant.id, id, fresh, now);
    return c.json({ appended, duplicates: messages.length - appended, messageCount }, 200);
  });

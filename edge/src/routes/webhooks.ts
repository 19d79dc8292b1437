/**
 * `POST /v1/webhooks/{tenantId}/rebuild`: a tenant asks for a rebuild of a conversation, signed with
 * its webhook secret (Standard Webhooks). A conversation has at most one rebuild queued or running:
 * a verified request enqueues one when none is, and else is folded into one follow-up rebuild that
 * starts when the running one settles; a conversation whose active version holds every message has
 * nothing to build. A redelivery (same `webhook-id`) answers with the same version and enqueues
 * nothing.
 */
import { OpenAPIHono, createRoute, z } from "@hono/zod-openapi";
import { createMiddleware } from "hono/factory";
import { EpicacheError, isValidId, newVersionId, verifyWebhook } from "@epicache/shared";
import { getConversation } from "../db/conversations";
import { deleteDelivery, findDelivery, recordDelivery } from "../db/deliveries";
import { getTenant } from "../db/tenants";
import { getVersion, requestRebuild, WEBHOOK_VERSION_SQL } from "../db/versions";
import type { AppEnv } from "../env";
import type { RebuildJob } from "../queue/rebuild-consumer";
import { failRebuild } from "../rebuild/settle";
import { Id, RebuildWebhookRequest, RebuildWebhookResponse, errorResponses } from "./schemas";

/** Verifies the signature before anything else is read (an unsigned body is not even validated). */
const verifySignature = createMiddleware<AppEnv & { Variables: { webhookId: string } }>(async (c, next) => {
  const tenantId = c.req.param("tenantId");
  // An unknown tenant looks like a wrong signature: the route does not tell which tenants exist.
  const tenant = isValidId(tenantId) ? await getTenant(c.env.DB, tenantId) : null;
  if (tenant === null) throw new EpicacheError("webhook_invalid", "no v1 signature matches");
  const { id } = await verifyWebhook(tenant.webhookSecret, (name) => c.req.header(name), await c.req.text(), { now: Date.now() / 1000 });
  c.set("tenant", tenant);
  c.set("webhookId", id);
  await next();
});

const route = createRoute({
  method: "post",
  path: "/v1/webhooks/{tenantId}/rebuild",
  tags: ["webhooks"],
  summary: "Rebuild a conversation's episodes (Standard Webhooks, signed with the tenant's secret)",
  description:
    "Headers `webhook-id`, `webhook-timestamp` (within 5 minutes) and `webhook-signature` (`v1,<base64 HMAC-SHA256 of id.timestamp.body>`, key = the base64-decoded part of the tenant's `whsec_` secret). The rebuild runs in the background; `GET /v1/conversations/{id}` shows its progress, and the new version becomes active when it succeeds. " +
    "A conversation has at most one rebuild queued or running: a webhook that comes meanwhile is folded into one follow-up rebuild (`followUp: true`, `version` names the rebuild it waits for), which starts when that one settles if messages came that it does not hold; any number of such webhooks make one follow-up. A rebuild continues the active version with the messages after its last one when it can, and builds from the whole transcript otherwise.",
  middleware: [verifySignature] as const,
  request: {
    params: z.object({ tenantId: Id.openapi({ param: { name: "tenantId", in: "path" } }) }),
    body: { required: true, content: { "application/json": { schema: RebuildWebhookRequest } } },
  },
  responses: {
    202: { description: "Enqueued (`version` is the new rebuild), or folded into the follow-up of the rebuild in flight (`followUp: true`, `version` is that rebuild)", content: { "application/json": { schema: RebuildWebhookResponse } } },
    200: {
      description: "Already received (same webhook-id, `duplicate: true`), or nothing to build: the active version (`version`, status `succeeded`) holds every message. Nothing enqueued.",
      content: { "application/json": { schema: RebuildWebhookResponse } },
    },
    ...errorResponses(400, 401, 404, 409, 413),
  },
});

/**
 * The webhook routes.
 *
 * @example
 * ```ts
 * const body = JSON.stringify({ conversationId: "conv-26" });
 * const headers = await signWebhook(webhookSecret, { id: crypto.randomUUID(), timestamp: Math.floor(Date.now() / 1000), body });
 * await fetch(`http://127.0.0.1:8787/v1/webhooks/${tenantId}/rebuild`, { method: "POST", headers: { ...headers, "content-type": "application/json" }, body });
 * // 202 {"conversationId":"conv-26","version":"v2026…","status":"queued","duplicate":false}
 * ```
 */
export const webhookRoutes = new OpenAPIHono<AppEnv & { Variables: { webhookId: string } }>().openapi(route, async (c) => {
  const tenant = c.var.tenant;
  const webhookId = c.var.webhookId;
  const { conversationId } = c.req.valid("json");
  const duplicate = async () => {
    const seen = await findDelivery(c.env.DB, tenant.id, webhookId);
    if (seen === null) return null;
    const record = await getVersion(c.env.DB, tenant.id, seen.conversationId, seen.version);
    const followUp = (await getConversation(c.env.DB, tenant.id, seen.conversationId))?.followUp ?? false;
    return c.json({ conversationId: seen.conversationId, version: seen.version, status: record?.status ?? "queued", duplicate: true, followUp }, 200);
  };
  const earlier = await duplicate();
  if (earlier) return earlier;

  const conversation = await getConversation(c.env.DB, tenant.id, conversationId);
  if (conversation === null) throw new EpicacheError("not_found", `no conversation ${conversationId}`);
  if (conversation.messageCount === 0) throw new EpicacheError("conversation_empty", `conversation ${conversationId} has no messages to build from`);
  const version = newVersionId();
  const now = new Date();
  let named: { version: string; status: string | null };
  try {
    // One transaction: queue `version` or mark the follow-up, then record the delivery with the
    // version it is answered with (a webhook-id already recorded aborts it all).
    const results = await c.env.DB.batch([
      ...requestRebuild(c.env.DB, tenant.id, conversationId, version, now.toISOString()),
      recordDelivery(c.env.DB, tenant.id, webhookId, conversationId, WEBHOOK_VERSION_SQL, version, now.getTime() / 1000),
      c.env.DB
        .prepare("SELECT d.version, v.status FROM webhook_deliveries d LEFT JOIN versions v ON v.tenant_id = d.tenant_id AND v.conversation_id = d.conversation_id AND v.version = d.version WHERE d.tenant_id = ? AND d.webhook_id = ?")
        .bind(tenant.id, webhookId),
    ]);
    named = results[3].results[0] as { version: string; status: string | null };
  } catch (e) {
    // The same webhook-id delivered twice at once: the other delivery recorded it first.
    const raced = await duplicate();
    if (raced) return raced;
    throw e;
  }
  if (named.version !== version) {
    const inFlight = named.status === "queued" || named.status === "submitted";
    return c.json({ conversationId, version: named.version, status: named.status ?? "succeeded", duplicate: false, followUp: inFlight }, inFlight ? 202 : 200);
  }
  const job: RebuildJob = { tenantId: tenant.id, conversationId, version };
  try {
    await c.env.REBUILD_QUEUE.send(job);
  } catch (e) {
    // Not enqueued: forget the delivery so that the sender's retry is not taken for a duplicate.
    await failRebuild(c.env, tenant.id, conversationId, version, { code: "internal", message: "the rebuild could not be enqueued" });
    await deleteDelivery(c.env.DB, tenant.id, webhookId);
    throw new EpicacheError("internal", "the rebuild could not be enqueued; retry the webhook", { cause: e });
  }
  return c.json({ conversationId, version, status: "queued", duplicate: false, followUp: false }, 202);
});

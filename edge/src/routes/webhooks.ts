/**
 * `POST /v1/webhooks/{tenantId}/rebuild`: a tenant asks for a rebuild of a conversation, signed with
 * its webhook secret (Standard Webhooks). The route verifies the signature and answers; what becomes
 * of the request (enqueued, folded into a follow-up, nothing to build, a redelivery) is the
 * rebuild's (rebuild/enqueue.ts).
 */
import { OpenAPIHono, createRoute, z } from "@hono/zod-openapi";
import { createMiddleware } from "hono/factory";
import { EpicacheError, isValidId, verifyWebhook } from "@epicache/shared";
import { getTenant } from "../db/tenants";
import type { AppEnv } from "../env";
import { acceptRebuildRequest } from "../rebuild";
import { Id, RebuildWebhookRequest, RebuildWebhookResponse, errorResponses } from "./schemas";

/** Verifies the signature before anything else is read (an unsigned body is not even validated). */
const verifySignature = createMiddleware<AppEnv & { Variables: { webhookId: string } }>(
  async (c, next) => {
    const tenantId = c.req.param("tenantId");
    // An unknown tenant looks like a wrong signature: the route does not tell which tenants exist.
    const tenant = isValidId(tenantId) ? await getTenant(c.env.DB, tenantId) : null;
    if (tenant === null) throw new EpicacheError("webhook_invalid", "no v1 signature matches");
    const { id } = await verifyWebhook(
      tenant.webhookSecret,
      (name) => c.req.header(name),
      await c.req.text(),
      { now: Date.now() / 1000 },
    );
    c.set("tenant", tenant);
    c.set("webhookId", id);
    await next();
  },
);

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
    202: {
      description:
        "Enqueued (`version` is the new rebuild), or folded into the follow-up of the rebuild in flight (`followUp: true`, `version` is that rebuild)",
      content: { "application/json": { schema: RebuildWebhookResponse } },
    },
    200: {
      description:
        "Already received (same webhook-id, `duplicate: true`), or nothing to build: the active version (`version`, status `succeeded`) holds every message. Nothing enqueued.",
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
export const webhookRoutes = new OpenAPIHono<
  AppEnv & { Variables: { webhookId: string } }
>().openapi(route, async (c) => {
  const { conversationId } = c.req.valid("json");
  const r = await acceptRebuildRequest(c.env, c.var.tenant.id, conversationId, c.var.webhookId);
  const answer = {
    conversationId: r.conversationId,
    version: r.version,
    status: r.status,
    duplicate: r.outcome === "duplicate",
    followUp: r.followUp,
  };
  // Accepted (202) when it enqueued or waits for a rebuild; 200 for a redelivery or nothing to build.
  return c.json(answer, r.outcome === "enqueued" || r.outcome === "folded" ? 202 : 200);
});

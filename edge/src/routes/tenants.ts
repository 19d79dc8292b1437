/** `POST /v1/tenants` (admin): a tenant, its API key and its webhook secret. */
import { OpenAPIHono, createRoute } from "@hono/zod-openapi";
import { newWebhookSecret } from "@epicache/shared";
import { hashApiKey, newApiKey, requireAdmin } from "../auth";
import { createTenant } from "../db/tenants";
import type { AppEnv } from "../env";
import { CreateTenantRequest, CreateTenantResponse, errorResponses } from "./schemas";

const route = createRoute({
  method: "post",
  path: "/v1/tenants",
  tags: ["admin"],
  summary: "Create a tenant",
  description:
    "Needs `Authorization: Bearer <admin token>`. The API key and webhook secret are shown once.",
  security: [{ adminToken: [] }],
  middleware: [requireAdmin] as const,
  request: {
    body: { required: true, content: { "application/json": { schema: CreateTenantRequest } } },
  },
  responses: {
    201: {
      description: "The tenant",
      content: { "application/json": { schema: CreateTenantResponse } },
    },
    ...errorResponses(400, 401, 413),
  },
});

function newTenantId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(10));
  return `t-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/**
 * The tenant routes.
 *
 * @example
 * ```sh
 * curl -s -X POST http://127.0.0.1:8787/v1/tenants -H "authorization: Bearer $ADMIN_TOKEN" \
 *   -H 'content-type: application/json' -d '{"name": "Acme"}'
 * # {"tenantId":"t-3fa9…","apiKey":"ek_…","webhookSecret":"whsec_…"}
 * ```
 */
export const tenantRoutes = new OpenAPIHono<AppEnv>().openapi(route, async (c) => {
  const body = c.req.valid("json");
  const apiKey = newApiKey();
  const tenant = {
    id: newTenantId(),
    name: body.name,
    webhookSecret: newWebhookSecret(),
    limits: {
      maxConversations: body.limits?.maxConversations ?? null,
      maxMessagesPerConversation: body.limits?.maxMessagesPerConversation ?? null,
      requestsPerMinute: body.limits?.requestsPerMinute ?? null,
    },
  };
  await createTenant(c.env.DB, tenant, await hashApiKey(apiKey), new Date().toISOString());
  return c.json({ tenantId: tenant.id, apiKey, webhookSecret: tenant.webhookSecret }, 201);
});

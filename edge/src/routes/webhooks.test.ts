import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { newWebhookSecret, signWebhook } from "@epicache/shared";
import { call, errorCode, newTenant, testEnv } from "../testing/helpers";

function fakeQueue() {
  const send = vi.fn(async (_body: unknown) => {});
  return { queue: { send, sendBatch: vi.fn() } as unknown as Queue, send };
}

async function webhook(tenantId: string, secret: string, body: unknown, options: { id?: string; timestamp?: number; environment?: Env; tamper?: (raw: string) => string } = {}) {
  const raw = JSON.stringify(body);
  const headers = await signWebhook(secret, { id: options.id ?? crypto.randomUUID(), timestamp: options.timestamp ?? Math.floor(Date.now() / 1000), body: raw });
  return call("POST", `/v1/webhooks/${tenantId}/rebuild`, { rawBody: options.tamper ? options.tamper(raw) : raw, headers, env: options.environment });
}

async function withConversation() {
  const tenant = await newTenant();
  await call("POST", "/v1/conversations/conv-1/messages", { body: { messages: [{ id: "m1", speaker: "Ann", text: "Hi" }] }, key: tenant.apiKey });
  return tenant;
}

afterEach(() => vi.restoreAllMocks());

describe("POST /v1/webhooks/{tenantId}/rebuild", () => {
  it("enqueues one rebuild job for a valid webhook, and records a queued version", async () => {
    const { tenantId, webhookSecret, apiKey } = await withConversation();
    const { queue, send } = fakeQueue();
    const res = await webhook(tenantId, webhookSecret, { conversationId: "conv-1" }, { environment: testEnv({ REBUILD_QUEUE: queue }) });
    expect(res.status).toBe(202);
    const body = (await res.json()) as { version: string; status: string; duplicate: boolean };
    expect(body).toMatchObject({ conversationId: "conv-1", status: "queued", duplicate: false });
    expect(body.version).toMatch(/^v\d{8}T\d{9}Z-[0-9a-f]{6}$/);
    expect(send).toHaveBeenCalledTimes(1);
    expect(send.mock.calls[0][0]).toEqual({ tenantId, conversationId: "conv-1", version: body.version });
    const conversation = await (await call("GET", "/v1/conversations/conv-1", { key: apiKey })).json();
    expect(conversation).toMatchObject({ activeVersion: null, rebuild: { version: body.version, status: "queued" } });
  });

  it("answers a replayed webhook-id with the same version and enqueues nothing more", async () => {
    const { tenantId, webhookSecret } = await withConversation();
    const { queue, send } = fakeQueue();
    const environment = testEnv({ REBUILD_QUEUE: queue });
    const first = (await (await webhook(tenantId, webhookSecret, { conversationId: "conv-1" }, { id: "msg_1", environment })).json()) as { version: string };
    const again = await webhook(tenantId, webhookSecret, { conversationId: "conv-1" }, { id: "msg_1", environment });
    expect(again.status).toBe(200);
    expect(await again.json()).toMatchObject({ version: first.version, duplicate: true });
    expect(send).toHaveBeenCalledTimes(1);
    // A new webhook-id is a new rebuild.
    expect((await webhook(tenantId, webhookSecret, { conversationId: "conv-1" }, { id: "msg_2", environment })).status).toBe(202);
    expect(send).toHaveBeenCalledTimes(2);
  });

  it("refuses forged, tampered, stale, unsigned and other tenants' webhooks with 401 webhook_invalid", async () => {
    const { tenantId, webhookSecret } = await withConversation();
    const other = await withConversation();
    const { queue, send } = fakeQueue();
    const environment = testEnv({ REBUILD_QUEUE: queue });
    const body = { conversationId: "conv-1" };
    const refused = [
      await webhook(tenantId, newWebhookSecret(), body, { environment }),
      await webhook(tenantId, other.webhookSecret, body, { environment }),
      await webhook(tenantId, webhookSecret, body, { environment, tamper: (raw) => raw.replace("conv-1", "conv-2") }),
      await webhook(tenantId, webhookSecret, body, { environment, timestamp: Math.floor(Date.now() / 1000) - 301 }),
      await webhook(tenantId, webhookSecret, body, { environment, timestamp: Math.floor(Date.now() / 1000) + 301 }),
      await webhook("t-unknown", webhookSecret, body, { environment }),
      await call("POST", `/v1/webhooks/${tenantId}/rebuild`, { body, env: environment }),
    ];
    for (const res of refused) {
      expect(res.status).toBe(401);
      expect(await errorCode(res)).toBe("webhook_invalid");
    }
    expect(send).not.toHaveBeenCalled();
    expect((await env.DB.prepare("SELECT COUNT(*) AS n FROM versions WHERE tenant_id = ?").bind(tenantId).first())?.n).toBe(0);
  });

  it("scopes the conversation to the webhook's tenant, and validates the body once verified", async () => {
    const a = await withConversation();
    const b = await newTenant();
    const { queue, send } = fakeQueue();
    const environment = testEnv({ REBUILD_QUEUE: queue });
    // B's signed webhook naming a conversation only A has.
    const res = await webhook(b.tenantId, b.webhookSecret, { conversationId: "conv-1" }, { environment });
    expect(res.status).toBe(404);
    expect(await errorCode(res)).toBe("not_found");
    const bad = await webhook(a.tenantId, a.webhookSecret, { conversation: "conv-1" }, { environment });
    expect(bad.status).toBe(400);
    expect(await errorCode(bad)).toBe("invalid_argument");
    expect(send).not.toHaveBeenCalled();
  });
});

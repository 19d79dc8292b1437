import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { ADMIN_TOKEN, call, errorCode } from "../testing/helpers";

describe("POST /v1/tenants", () => {
  it("needs the admin token", async () => {
    expect((await call("POST", "/v1/tenants", { body: { name: "x" } })).status).toBe(401);
    const wrong = await call("POST", "/v1/tenants", { body: { name: "x" }, key: "not-the-token" });
    expect(wrong.status).toBe(401);
    expect(await errorCode(wrong)).toBe("unauthorized");
    expect(
      (await call("POST", "/v1/tenants", { body: { name: "x" }, key: `${ADMIN_TOKEN}x` })).status,
    ).toBe(401);
  });

  it("creates a tenant whose secrets are shown once and whose key is stored hashed", async () => {
    const res = await call("POST", "/v1/tenants", {
      body: { name: "Acme", limits: { requestsPerMinute: 5 } },
      key: ADMIN_TOKEN,
    });
    expect(res.status).toBe(201);
    const body = (await res.json()) as { tenantId: string; apiKey: string; webhookSecret: string };
    expect(body.tenantId).toMatch(/^t-[0-9a-f]{20}$/);
    expect(body.apiKey).toMatch(/^ek_[A-Za-z0-9_-]{43}$/);
    expect(body.webhookSecret).toMatch(/^whsec_/);
    const stored = await env.DB.prepare("SELECT key_hash FROM api_keys WHERE tenant_id = ?")
      .bind(body.tenantId)
      .all<{ key_hash: string }>();
    expect(stored.results).toHaveLength(1);
    expect(stored.results[0].key_hash).toMatch(/^[0-9a-f]{64}$/);
    expect(stored.results[0].key_hash).not.toContain(body.apiKey);
    const tenant = await env.DB.prepare(
      "SELECT requests_per_minute, max_conversations FROM tenants WHERE id = ?",
    )
      .bind(body.tenantId)
      .first();
    expect(tenant).toEqual({ requests_per_minute: 5, max_conversations: null });
  });

  it("validates the body", async () => {
    const missing = await call("POST", "/v1/tenants", { body: {}, key: ADMIN_TOKEN });
    expect(missing.status).toBe(400);
    expect(await errorCode(missing)).toBe("invalid_argument");
    const extra = await call("POST", "/v1/tenants", {
      body: { name: "x", plan: "gold" },
      key: ADMIN_TOKEN,
    });
    expect(await errorCode(extra)).toBe("invalid_argument");
    const notJson = await call("POST", "/v1/tenants", { rawBody: "{name:", key: ADMIN_TOKEN });
    expect(notJson.status).toBe(400);
    expect(await errorCode(notJson)).toBe("invalid_json");
  });
});

describe("the app", () => {
  it("answers /healthz without credentials, and unknown routes with not_found", async () => {
    expect(await (await call("GET", "/healthz")).json()).toEqual({ ok: true });
    const res = await call("GET", "/v1/nothing-here");
    expect(res.status).toBe(404);
    expect(await errorCode(res)).toBe("not_found");
  });
});

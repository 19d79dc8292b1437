import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { call, errorCode, newTenant, testEnv } from "../testing/helpers";

const msg = (id: string, text = `text of ${id}`) => ({ id, speaker: "Ann", text });

async function append(key: string, conversation: string, messages: unknown, environment?: Env) {
  return call("POST", `/v1/conversations/${conversation}/messages`, { body: { messages }, key, env: environment });
}

describe("API key authentication", () => {
  it("refuses a missing or wrong key with 401 on every tenant route", async () => {
    const { apiKey } = await newTenant();
    for (const [method, path, body] of [
      ["GET", "/v1/conversations/c1", undefined],
      ["POST", "/v1/conversations/c1/messages", { messages: [msg("m1")] }],
      ["POST", "/v1/conversations/c1/query", { question: "Where?" }],
    ] as const) {
      const none = await call(method, path, { body });
      expect(none.status, `${method} ${path} without a key`).toBe(401);
      expect(await errorCode(none)).toBe("unauthorized");
      expect((await call(method, path, { body, key: `${apiKey}x` })).status, `${method} ${path} with a wrong key`).toBe(401);
      expect((await call(method, path, { body, headers: { authorization: apiKey } })).status, "not a bearer token").toBe(401);
    }
  });
});

describe("appending messages", () => {
  it("creates the conversation and appends in order, idempotently by message id", async () => {
    const { apiKey, tenantId } = await newTenant();
    const first = await append(apiKey, "conv-1", [msg("m1"), msg("m2"), { ...msg("m3"), timestamp: "1:56 pm on 8 May, 2023", session: 2 }]);
    expect(first.status).toBe(200);
    expect(await first.json()).toEqual({ appended: 3, duplicates: 0, messageCount: 3 });
    // A retry of the same request appends nothing.
    expect(await (await append(apiKey, "conv-1", [msg("m1"), msg("m2"), msg("m3")])).json()).toEqual({ appended: 0, duplicates: 3, messageCount: 3 });
    // A retry that overlaps new messages appends only the new ones, after the old.
    expect(await (await append(apiKey, "conv-1", [msg("m3"), msg("m4"), msg("m5", "five")])).json()).toEqual({ appended: 2, duplicates: 1, messageCount: 5 });
    const rows = await env.DB.prepare("SELECT seq, client_id, text, timestamp, session FROM messages WHERE tenant_id = ? AND conversation_id = ? ORDER BY seq").bind(tenantId, "conv-1").all();
    expect(rows.results.map((r) => [r.seq, r.client_id])).toEqual([[1, "m1"], [2, "m2"], [3, "m3"], [4, "m4"], [5, "m5"]]);
    expect(rows.results[2]).toMatchObject({ timestamp: "1:56 pm on 8 May, 2023", session: "2" });
    const conversation = await call("GET", "/v1/conversations/conv-1", { key: apiKey });
    expect(await conversation.json()).toEqual({ id: "conv-1", messageCount: 5, activeVersion: null, rebuild: null });
  });

  it("keeps concurrent appends whole: every message once, seqs contiguous", async () => {
    const { apiKey, tenantId } = await newTenant();
    const batches = Array.from({ length: 5 }, (_, b) => Array.from({ length: 4 }, (_, i) => msg(`b${b}-m${i}`)));
    // Each batch is sent twice at once, as a client retrying on a timeout would.
    await Promise.all([...batches, ...batches].map((batch) => append(apiKey, "conv-c", batch)));
    const rows = await env.DB.prepare("SELECT seq, client_id FROM messages WHERE tenant_id = ? AND conversation_id = ? ORDER BY seq").bind(tenantId, "conv-c").all<{ seq: number; client_id: string }>();
    expect(rows.results.map((r) => r.seq)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(new Set(rows.results.map((r) => r.client_id)).size).toBe(20);
    for (let b = 0; b < 5; b++) {
      const seqs = rows.results.filter((r) => r.client_id.startsWith(`b${b}-`)).map((r) => r.client_id);
      expect(seqs).toEqual([0, 1, 2, 3].map((i) => `b${b}-m${i}`));
    }
  });

  it("validates messages and ids with 400", async () => {
    const { apiKey } = await newTenant();
    const cases: [string, unknown][] = [
      ["c1", []],
      ["c1", [{ speaker: "Ann", text: "no id" }]],
      ["c1", [{ id: "m1", text: "no speaker" }]],
      ["c1", [{ ...msg("m1"), extra: true }]],
      ["c1", [msg("m1"), msg("m1")]],
      ["a..b", [msg("m1")]],
      ["-leading", [msg("m1")]],
      ["x".repeat(65), [msg("m1")]],
    ];
    for (const [conversation, messages] of cases) {
      const res = await append(apiKey, conversation, messages);
      expect(res.status, JSON.stringify([conversation, messages])).toBe(400);
      expect(await errorCode(res)).toBe("invalid_argument");
    }
    const notJson = await call("POST", "/v1/conversations/c1/messages", { rawBody: "[", key: apiKey });
    expect(await errorCode(notJson)).toBe("invalid_json");
    const text = await call("POST", "/v1/conversations/c1/messages", { rawBody: "{}", key: apiKey, headers: { "content-type": "text/plain" } });
    expect(text.status).toBe(415);
    expect(await errorCode(text)).toBe("unsupported_media_type");
  });

  it("enforces the size of a message, of a request's messages and of its body with 413", async () => {
    const { apiKey } = await newTenant();
    const small = testEnv({ MAX_MESSAGE_CHARS: "10", MAX_MESSAGES_PER_REQUEST: "3", MAX_REQUEST_BYTES: "2000" });
    const long = await append(apiKey, "c1", [msg("m1", "x".repeat(11))], small);
    expect(long.status).toBe(413);
    expect(await errorCode(long)).toBe("payload_too_large");
    expect((await append(apiKey, "c1", [msg("m1", "x".repeat(10))], small)).status).toBe(200);
    expect((await append(apiKey, "c1", [msg("a", "a"), msg("b", "b"), msg("c", "c"), msg("d", "d")], small)).status).toBe(413);
    const big = await call("POST", "/v1/conversations/c1/messages", { rawBody: JSON.stringify({ messages: [msg("m9", "y".repeat(3000))] }), key: apiKey, env: small });
    expect(big.status).toBe(413);
    expect(await errorCode(big)).toBe("payload_too_large");
  });

  it("enforces the tenant's limits on conversations and messages", async () => {
    const { apiKey } = await newTenant("limited", { maxConversations: 2, maxMessagesPerConversation: 3 });
    expect((await append(apiKey, "c1", [msg("m1")])).status).toBe(200);
    expect((await append(apiKey, "c2", [msg("m1")])).status).toBe(200);
    const third = await append(apiKey, "c3", [msg("m1")]);
    expect(third.status).toBe(403);
    expect(await errorCode(third)).toBe("limit_exceeded");
    expect((await call("GET", "/v1/conversations/c3", { key: apiKey })).status).toBe(404);
    expect((await append(apiKey, "c1", [msg("m2"), msg("m3")])).status).toBe(200);
    const over = await append(apiKey, "c1", [msg("m4")]);
    expect(await errorCode(over)).toBe("limit_exceeded");
    // Duplicates do not count against the limit.
    expect((await append(apiKey, "c1", [msg("m3")])).status).toBe(200);
  });

  it("rate-limits a tenant's requests per minute with 429 and retry-after", async () => {
    const { apiKey } = await newTenant("busy", { requestsPerMinute: 3 });
    const other = await newTenant("calm", { requestsPerMinute: 3 });
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await call("GET", "/v1/conversations/none", { key: apiKey })).status);
    // A minute boundary between the requests would reset the count; it is 3 × 404 then 429 otherwise.
    if (new Set(statuses).size > 1) {
      expect(statuses).toEqual([404, 404, 404, 429]);
      const limited = await call("GET", "/v1/conversations/none", { key: apiKey });
      expect(Number(limited.headers.get("retry-after"))).toBeGreaterThan(0);
      expect(await errorCode(limited)).toBe("rate_limited");
    }
    expect((await call("GET", "/v1/conversations/none", { key: other.apiKey })).status).toBe(404);
  });
});

describe("tenant isolation", () => {
  it("gives tenant A 404 for tenant B's conversation on every route, and leaves it untouched", async () => {
    const a = await newTenant("A");
    const b = await newTenant("B");
    expect((await append(b.apiKey, "shared-name", [msg("m1"), msg("m2")])).status).toBe(200);
    const get = await call("GET", "/v1/conversations/shared-name", { key: a.apiKey });
    expect(get.status).toBe(404);
    expect(await errorCode(get)).toBe("not_found");
    const query = await call("POST", "/v1/conversations/shared-name/query", { body: { question: "Where?" }, key: a.apiKey });
    expect(query.status).toBe(404);
    // A's append to the same name makes A's own conversation; B's is unchanged.
    expect(await (await append(a.apiKey, "shared-name", [msg("m1"), msg("m9")])).json()).toEqual({ appended: 2, duplicates: 0, messageCount: 2 });
    expect(await (await call("GET", "/v1/conversations/shared-name", { key: b.apiKey })).json()).toMatchObject({ messageCount: 2 });
    const bRows = await env.DB.prepare("SELECT client_id FROM messages WHERE tenant_id = ? ORDER BY seq").bind(b.tenantId).all();
    expect(bRows.results.map((r) => r.client_id)).toEqual(["m1", "m2"]);
  });
});

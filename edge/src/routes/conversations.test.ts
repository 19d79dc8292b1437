import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { PUBLIC_MESSAGES, RebuildRequest, RUNNER_LIMITS } from "@epicache/shared";
import { messageBytes, readTranscript } from "../db/messages";
import { limitsOf } from "../db/tenants";
import { MAX_TRANSCRIPT_BYTES } from "../env";
import { installFakeRunners, json, jobStatus } from "../testing/fake-runner";
import { ADMIN_TOKEN, call, errorCode, newTenant, testEnv } from "../testing/helpers";
import { captureLogs } from "../testing/logs";
import { consume, recordingQueue, sendWebhook } from "../testing/rebuild-flow";

const msg = (id: string, text = `text of ${id}`) => ({ id, speaker: "Ann", text });

afterEach(() => vi.restoreAllMocks());

async function append(key: string, conversation: string, messages: unknown, environment?: Env) {
  return call("POST", `/v1/conversations/${conversation}/messages`, {
    body: { messages },
    key,
    env: environment,
  });
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
      expect(
        (await call(method, path, { body, key: `${apiKey}x` })).status,
        `${method} ${path} with a wrong key`,
      ).toBe(401);
      expect(
        (await call(method, path, { body, headers: { authorization: apiKey } })).status,
        "not a bearer token",
      ).toBe(401);
    }
  });
});

describe("appending messages", () => {
  it("creates the conversation and appends in order, idempotently by message id", async () => {
    const { apiKey, tenantId } = await newTenant();
    const first = await append(apiKey, "conv-1", [
      msg("m1"),
      msg("m2"),
      { ...msg("m3"), timestamp: "1:56 pm on 8 May, 2023", session: 2 },
    ]);
    expect(first.status).toBe(200);
    expect(await first.json()).toEqual({ appended: 3, duplicates: 0, messageCount: 3 });
    // A retry of the same request appends nothing.
    expect(
      await (await append(apiKey, "conv-1", [msg("m1"), msg("m2"), msg("m3")])).json(),
    ).toEqual({ appended: 0, duplicates: 3, messageCount: 3 });
    // A retry that overlaps new messages appends only the new ones, after the old.
    expect(
      await (await append(apiKey, "conv-1", [msg("m3"), msg("m4"), msg("m5", "five")])).json(),
    ).toEqual({ appended: 2, duplicates: 1, messageCount: 5 });
    const rows = await env.DB.prepare(
      "SELECT seq, client_id, text, timestamp, session FROM messages WHERE tenant_id = ? AND conversation_id = ? ORDER BY seq",
    )
      .bind(tenantId, "conv-1")
      .all();
    expect(rows.results.map((r) => [r.seq, r.client_id])).toEqual([
      [1, "m1"],
      [2, "m2"],
      [3, "m3"],
      [4, "m4"],
      [5, "m5"],
    ]);
    expect(rows.results[2]).toMatchObject({ timestamp: "1:56 pm on 8 May, 2023", session: "2" });
    const conversation = await call("GET", "/v1/conversations/conv-1", { key: apiKey });
    // The transcript's bytes: its JSON array in a rebuild's body, less the closing bracket.
    const transcriptBytes =
      new TextEncoder().encode(JSON.stringify(await readTranscript(env.DB, tenantId, "conv-1")))
        .length - 1;
    expect(await conversation.json()).toEqual({
      id: "conv-1",
      messageCount: 5,
      activeVersion: null,
      active: null,
      rebuild: null,
      followUp: false,
      transcriptBytes,
    });
  });

  it("keeps concurrent appends whole: every message once, seqs contiguous", async () => {
    const { apiKey, tenantId } = await newTenant();
    const batches = Array.from({ length: 5 }, (_, b) =>
      Array.from({ length: 4 }, (_, i) => msg(`b${b}-m${i}`)),
    );
    // Each batch is sent twice at once, as a client retrying on a timeout would.
    await Promise.all([...batches, ...batches].map((batch) => append(apiKey, "conv-c", batch)));
    const rows = await env.DB.prepare(
      "SELECT seq, client_id FROM messages WHERE tenant_id = ? AND conversation_id = ? ORDER BY seq",
    )
      .bind(tenantId, "conv-c")
      .all<{ seq: number; client_id: string }>();
    expect(rows.results.map((r) => r.seq)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(new Set(rows.results.map((r) => r.client_id)).size).toBe(20);
    for (let b = 0; b < 5; b++) {
      const seqs = rows.results
        .filter((r) => r.client_id.startsWith(`b${b}-`))
        .map((r) => r.client_id);
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
    const notJson = await call("POST", "/v1/conversations/c1/messages", {
      rawBody: "[",
      key: apiKey,
    });
    expect(await errorCode(notJson)).toBe("invalid_json");
    const text = await call("POST", "/v1/conversations/c1/messages", {
      rawBody: "{}",
      key: apiKey,
      headers: { "content-type": "text/plain" },
    });
    expect(text.status).toBe(415);
    expect(await errorCode(text)).toBe("unsupported_media_type");
  });

  it("enforces the size of a message, of a request's messages and of its body with 413", async () => {
    const { apiKey } = await newTenant();
    const small = testEnv({
      MAX_MESSAGE_CHARS: "10",
      MAX_MESSAGES_PER_REQUEST: "3",
      MAX_REQUEST_BYTES: "2000",
    });
    const long = await append(apiKey, "c1", [msg("m1", "x".repeat(11))], small);
    expect(long.status).toBe(413);
    expect(await errorCode(long)).toBe("payload_too_large");
    expect((await append(apiKey, "c1", [msg("m1", "x".repeat(10))], small)).status).toBe(200);
    expect(
      (
        await append(
          apiKey,
          "c1",
          [msg("a", "a"), msg("b", "b"), msg("c", "c"), msg("d", "d")],
          small,
        )
      ).status,
    ).toBe(413);
    const big = await call("POST", "/v1/conversations/c1/messages", {
      rawBody: JSON.stringify({ messages: [msg("m9", "y".repeat(3000))] }),
      key: apiKey,
      env: small,
    });
    expect(big.status).toBe(413);
    expect(await errorCode(big)).toBe("payload_too_large");
  });

  it("enforces the tenant's limits on conversations and messages", async () => {
    const { apiKey } = await newTenant("limited", {
      maxConversations: 2,
      maxMessagesPerConversation: 3,
    });
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
    for (let i = 0; i < 4; i++)
      statuses.push((await call("GET", "/v1/conversations/none", { key: apiKey })).status);
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

describe("limits a runner can take", () => {
  it("caps a conversation's transcript at MAX_TRANSCRIPT_BYTES with 413 payload_too_large, duplicates free; concurrent appends cannot pass it together", async () => {
    const { apiKey, tenantId } = await newTenant("bytes", { requestsPerMinute: 1_000_000 });
    // Each message of 40 characters of text is 79 bytes in a rebuild: {"id":"mNN","speaker":"Ann","text":"…"} and a comma.
    const sized = (i: number) => ({
      id: `m${String(i).padStart(2, "0")}`,
      speaker: "Ann",
      text: "x".repeat(40),
    });
    expect(messageBytes(sized(1))).toBe(79);
    const small = testEnv({ MAX_TRANSCRIPT_BYTES: String(79 * 10) });
    expect((await append(apiKey, "c1", [1, 2, 3, 4, 5, 6, 7, 8].map(sized), small)).status).toBe(
      200,
    );
    const over = await append(apiKey, "c1", [9, 10, 11].map(sized), small);
    expect(over.status).toBe(413);
    const { error } = (await over.json()) as { error: { code: string; message: string } };
    expect(error).toEqual({
      code: "payload_too_large",
      message:
        "the conversation's transcript is 632 bytes; these 3 messages (237 bytes) would pass its limit of 790 bytes, what one rebuild can send to a runner",
      requestId: over.headers.get("x-request-id"),
    });
    // Messages already held cost nothing; two more fit exactly.
    expect(await (await append(apiKey, "c1", [8, 9, 10].map(sized), small)).json()).toMatchObject({
      appended: 2,
      duplicates: 1,
      messageCount: 10,
    });
    expect(await (await call("GET", "/v1/conversations/c1", { key: apiKey })).json()).toMatchObject(
      { messageCount: 10, transcriptBytes: 790 },
    );

    // Eight requests of one message at once against a cap with room for five: five are stored.
    await Promise.all(Array.from({ length: 8 }, (_, i) => append(apiKey, "c2", [sized(i)], small)));
    await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        append(apiKey, "c3", [sized(i)], testEnv({ MAX_TRANSCRIPT_BYTES: String(79 * 5) })),
      ),
    );
    const stored = await env.DB.prepare(
      "SELECT conversation_id AS c, COUNT(*) AS n, SUM(bytes) AS bytes FROM messages WHERE tenant_id = ? GROUP BY conversation_id ORDER BY c",
    )
      .bind(tenantId)
      .all();
    expect(stored.results).toEqual([
      { c: "c1", n: 10, bytes: 790 },
      { c: "c2", n: 8, bytes: 632 },
      { c: "c3", n: 5, bytes: 395 },
    ]);
  });

  it("sizes messages stored before the cap as the append does (migration 0004's backfill)", async () => {
    const { apiKey, tenantId } = await newTenant("backfill");
    const messages = [
      { id: "m1", speaker: "Ann", text: "plain" },
      {
        id: "m2",
        speaker: "Bøb",
        text: 'é😀 "quoted" \\ tab\t nl\n nul\u0000 bell\u0007 del\u007f',
        timestamp: "1:56 pm on 8 May, 2023",
        session: 2,
      },
      { id: "m-3", speaker: "Ann", text: "", session: 's"2' },
    ];
    expect((await append(apiKey, "c1", messages)).status).toBe(200);
    const migration = (
      env as unknown as { TEST_MIGRATIONS: { name: string; queries: string[] }[] }
    ).TEST_MIGRATIONS.find((m) => m.name.startsWith("0004_"));
    const backfill = migration?.queries.find((q) => q.includes("UPDATE messages SET bytes"));
    expect(backfill).toBeDefined();
    await env.DB.prepare("UPDATE messages SET bytes = 0 WHERE tenant_id = ?").bind(tenantId).run();
    await env.DB.prepare(`${backfill}`).run();
    const rows = await env.DB.prepare(
      "SELECT bytes FROM messages WHERE tenant_id = ? AND conversation_id = 'c1' ORDER BY seq",
    )
      .bind(tenantId)
      .all<{ bytes: number }>();
    expect(rows.results.map((r) => r.bytes)).toEqual(messages.map(messageBytes));
  });

  it("checks concurrent appends against the messages limit in the same transaction", async () => {
    const { apiKey, tenantId } = await newTenant("count", {
      maxMessagesPerConversation: 5,
      requestsPerMinute: 1_000_000,
    });
    const answers = await Promise.all(
      Array.from({ length: 8 }, (_, i) => append(apiKey, "c1", [msg(`m${i}`)])),
    );
    expect(answers.filter((r) => r.status === 200)).toHaveLength(5);
    for (const r of answers.filter((a) => a.status !== 200))
      expect(await errorCode(r)).toBe("limit_exceeded");
    expect(
      (
        await env.DB.prepare(
          "SELECT message_count FROM conversations WHERE tenant_id = ? AND id = 'c1'",
        )
          .bind(tenantId)
          .first()
      )?.message_count,
    ).toBe(5);
  });

  it("refuses vars and tenant limits beyond what a runner takes", async () => {
    for (const [name, value] of [
      ["MAX_MESSAGES_PER_CONVERSATION", "50001"],
      ["MAX_MESSAGE_CHARS", "20001"],
      ["MAX_TRANSCRIPT_BYTES", String((16 << 20) - (64 << 10) + 1)],
    ] as const) {
      const logs = captureLogs();
      const res = await call("POST", "/v1/tenants", {
        body: { name: "x" },
        key: ADMIN_TOKEN,
        env: testEnv({ [name]: value }),
      });
      expect(res.status, name).toBe(500);
      // The var is named in the log, under the request id the answer gives; the answer says only "internal".
      const { error } = (await res.json()) as {
        error: { code: string; message: string; requestId: string };
      };
      expect(error).toEqual({
        code: "internal",
        message: PUBLIC_MESSAGES.internal,
        requestId: res.headers.get("x-request-id"),
      });
      expect(logs.of(error.requestId)).toContain(name);
      vi.restoreAllMocks();
    }
    const tenant = await call("POST", "/v1/tenants", {
      body: { name: "x", limits: { maxMessagesPerConversation: 50_001 } },
      key: ADMIN_TOKEN,
    });
    expect(tenant.status).toBe(400);
    // A tenant stored with more before that bound gets what a runner takes.
    const old = {
      id: "t",
      name: "old",
      webhookSecret: "",
      limits: {
        maxConversations: null,
        maxMessagesPerConversation: 100_000,
        requestsPerMinute: null,
      },
    };
    expect(
      limitsOf(old, {
        maxConversations: 1,
        maxMessagesPerConversation: 50_000,
        requestsPerMinute: 1,
      }).maxMessagesPerConversation,
    ).toBe(50_000);
  });

  it("accepts no transcript a full rebuild cannot send: at the default cap, the runner gets a body it takes", async () => {
    const { apiKey, tenantId, webhookSecret } = await newTenant("full", {
      requestsPerMinute: 1_000_000,
    });
    // Messages of MAX_MESSAGE_CHARS characters, half of them two bytes each in UTF-8, 25 to a request (under 1 MiB).
    const text = (i: number) => `${i} `.padEnd(10_000, "x").padEnd(20_000, "é");
    let next = 0;
    // Filled 25 messages a request, then one at a time, until refused.
    for (const size of [25, 1]) {
      let last: Response;
      do {
        last = await append(
          apiKey,
          "big",
          Array.from({ length: size }, () => ({
            id: `m${next++}`,
            speaker: next % 2 ? "Ann" : "Bob",
            text: text(next),
          })),
        );
      } while (last.status === 200);
      expect(last.status).toBe(413);
      expect(await errorCode(last)).toBe("payload_too_large");
    }
    const { transcriptBytes, messageCount } = (await (
      await call("GET", "/v1/conversations/big", { key: apiKey })
    ).json()) as { transcriptBytes: number; messageCount: number };
    expect(transcriptBytes).toBeLessThanOrEqual(MAX_TRANSCRIPT_BYTES);
    expect(
      transcriptBytes + messageBytes({ id: `m${next}`, speaker: "Ann", text: text(next) }),
    ).toBeGreaterThan(MAX_TRANSCRIPT_BYTES);

    const { jobs, environment } = recordingQueue();
    let body = "";
    installFakeRunners(({ body: request }) => {
      body = JSON.stringify(request);
      const r = request as { tenant: string; conversation: string; version: string };
      return json(
        jobStatus({
          tenant: r.tenant,
          conversation: r.conversation,
          version: r.version,
          status: "queued",
        }),
        202,
      );
    });
    await sendWebhook({ tenantId, webhookSecret }, "big", environment);
    await consume(jobs[0], environment);
    const bytes = new TextEncoder().encode(body).length;
    expect(bytes).toBeLessThanOrEqual(RUNNER_LIMITS.bodyBytes);
    expect(bytes).toBeGreaterThan(RUNNER_LIMITS.bodyBytes - (128 << 10));
    const parsed = RebuildRequest.safeParse(JSON.parse(body));
    expect(parsed.success).toBe(true);
    expect(parsed.data?.messages).toHaveLength(messageCount);
  }, 60_000);
});

describe("tenant isolation", () => {
  it("gives tenant A 404 for tenant B's conversation on every route, and leaves it untouched", async () => {
    const a = await newTenant("A");
    const b = await newTenant("B");
    expect((await append(b.apiKey, "shared-name", [msg("m1"), msg("m2")])).status).toBe(200);
    const get = await call("GET", "/v1/conversations/shared-name", { key: a.apiKey });
    expect(get.status).toBe(404);
    expect(await errorCode(get)).toBe("not_found");
    const query = await call("POST", "/v1/conversations/shared-name/query", {
      body: { question: "Where?" },
      key: a.apiKey,
    });
    expect(query.status).toBe(404);
    // A's append to the same name makes A's own conversation; B's is unchanged.
    expect(await (await append(a.apiKey, "shared-name", [msg("m1"), msg("m9")])).json()).toEqual({
      appended: 2,
      duplicates: 0,
      messageCount: 2,
    });
    expect(
      await (await call("GET", "/v1/conversations/shared-name", { key: b.apiKey })).json(),
    ).toMatchObject({ messageCount: 2 });
    const bRows = await env.DB.prepare(
      "SELECT client_id FROM messages WHERE tenant_id = ? ORDER BY seq",
    )
      .bind(b.tenantId)
      .all();
    expect(bRows.results.map((r) => r.client_id)).toEqual(["m1", "m2"]);
  });
});

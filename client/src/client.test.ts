/**
 * The client against a fake `fetch` (no server): what it sends, how it maps answers and errors,
 * streamed answers, rebuild waits, and webhook signatures as the edge checks them (shared's
 * verifyWebhook). test/stack.e2e.test.ts drives it against the real stack.
 */
import { newWebhookSecret, verifyWebhook } from "@epicache/shared";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  EpicacheApiError,
  EpicacheClient,
  EpicacheRebuildError,
  type AnswerEvent,
  type Conversation,
  type RebuildState,
} from "./index";

interface Sent {
  url: string;
  method: string;
  headers: Record<string, string>;
  body: string | undefined;
}

/** A client whose fetch records each request and answers with `answer(request, index)`. */
function fake(
  answer: (sent: Sent, index: number) => Response | Promise<Response>,
  options: { apiKey?: string; adminToken?: string } = { apiKey: "ek_test" },
) {
  const sent: Sent[] = [];
  const client = new EpicacheClient({
    baseUrl: "http://edge.test/",
    ...options,
    fetch: async (url, init) => {
      const request: Sent = {
        url,
        method: init.method ?? "GET",
        headers: { ...(init.headers as Record<string, string>) },
        body: init.body as string | undefined,
      };
      sent.push(request);
      return answer(request, sent.length - 1);
    },
  });
  return { client, sent };
}

const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", "x-request-id": "req-header", ...headers },
  });

const errorAnswer = (status: number, code: string, message: string) =>
  json(status, { error: { code, message, requestId: "req-body" } });

/** A `text/event-stream` answer sent in these pieces. */
function sse(pieces: string[], onCancel?: () => void): Response {
  const encoder = new TextEncoder();
  const queue = pieces.map((p) => encoder.encode(p));
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      const next = queue.shift();
      if (next === undefined) controller.close();
      else controller.enqueue(next);
    },
    cancel: onCancel,
  });
  return new Response(body, {
    status: 200,
    headers: { "content-type": "text/event-stream", "x-request-id": "req-stream" },
  });
}

async function thrown(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (e) {
    return e;
  }
  throw new Error("expected a rejection");
}

async function events(iterable: AsyncIterable<AnswerEvent>): Promise<AnswerEvent[]> {
  const out: AnswerEvent[] = [];
  for await (const e of iterable) out.push(e);
  return out;
}

const V1 = "v20260101T000000000Z-000001";
const V2 = "v20260102T000000000Z-000002";

function conversation(
  fields: Partial<Conversation> = {},
  rebuild: Partial<RebuildState> | null = null,
): Conversation {
  return {
    id: "conv-1",
    messageCount: 3,
    activeVersion: null,
    active: null,
    followUp: false,
    transcriptBytes: 120,
    ...fields,
    rebuild:
      rebuild === null
        ? null
        : {
            version: V1,
            status: "queued",
            kind: null,
            reason: null,
            baseVersion: null,
            messageCount: null,
            stage: null,
            progress: null,
            etaSeconds: null,
            error: null,
            createdAt: "",
            updatedAt: "",
            ...rebuild,
          },
  };
}

describe("EpicacheClient requests", () => {
  it("sends each route with its credentials and JSON body", async () => {
    const { client, sent } = fake(
      (s) => {
        if (s.url.endsWith("/v1/tenants"))
          return json(201, { tenantId: "t-1", apiKey: "ek_1", webhookSecret: "whsec_AAAA" });
        if (s.url.endsWith("/messages"))
          return json(200, { appended: 1, duplicates: 0, messageCount: 1 });
        if (s.url.endsWith("/query"))
          return json(200, { answer: "Pottery.", episode: 1, version: V1, tokens: 2 });
        if (s.url.endsWith("/versions")) return json(200, { versions: [], more: false });
        if (s.url.includes("/versions/"))
          return json(200, {
            version: V1,
            episodes: [{ id: 0, windows: 3, topTerms: ["pottery"], cacheBytes: 10 }],
          });
        return json(200, conversation());
      },
      { apiKey: "ek_test", adminToken: "adm" },
    );

    expect(await client.createTenant("acme", { requestsPerMinute: 60 })).toEqual({
      tenantId: "t-1",
      apiKey: "ek_1",
      webhookSecret: "whsec_AAAA",
    });
    expect(
      await client.appendMessages("conv 1", [{ id: "m1", speaker: "Ann", text: "Hi", session: 1 }]),
    ).toEqual({ appended: 1, duplicates: 0, messageCount: 1 });
    expect((await client.getConversation("conv-1")).transcriptBytes).toBe(120);
    expect(await client.ask("conv-1", { question: "What?", maxTokens: 8 })).toMatchObject({
      answer: "Pottery.",
      episode: 1,
    });
    expect(await client.listVersions("conv-1")).toEqual({ versions: [], more: false });
    expect((await client.getVersion("conv-1", V1)).episodes).toEqual([
      { id: 0, windows: 3, topTerms: ["pottery"], cacheBytes: 10 },
    ]);

    expect(sent.map((s) => `${s.method} ${s.url}`)).toEqual([
      "POST http://edge.test/v1/tenants",
      "POST http://edge.test/v1/conversations/conv%201/messages",
      "GET http://edge.test/v1/conversations/conv-1",
      "POST http://edge.test/v1/conversations/conv-1/query",
      "GET http://edge.test/v1/conversations/conv-1/versions",
      `GET http://edge.test/v1/conversations/conv-1/versions/${V1}`,
    ]);
    expect(sent.map((s) => s.headers.authorization)).toEqual([
      "Bearer adm",
      "Bearer ek_test",
      "Bearer ek_test",
      "Bearer ek_test",
      "Bearer ek_test",
      "Bearer ek_test",
    ]);
    expect(JSON.parse(sent[0].body!)).toEqual({ name: "acme", limits: { requestsPerMinute: 60 } });
    expect(JSON.parse(sent[1].body!)).toEqual({
      messages: [{ id: "m1", speaker: "Ann", text: "Hi", session: 1 }],
    });
    expect(sent[2].body).toBeUndefined();
    expect(JSON.parse(sent[3].body!)).toEqual({ question: "What?", maxTokens: 8, stream: false });
    expect(sent[3].headers["content-type"]).toBe("application/json");
  });

  it("refuses a call whose credential it was not given, before sending it", async () => {
    const { client, sent } = fake(() => json(200, {}), {});
    await expect(client.getConversation("conv-1")).rejects.toThrow(/needs the apiKey option/);
    await expect(client.createTenant("acme")).rejects.toThrow(/needs the adminToken option/);
    expect(sent).toEqual([]);
  });
});

describe("EpicacheClient errors", () => {
  it("throws the API's error body as an EpicacheApiError with its status, code, message and request id", async () => {
    const { client } = fake(() => errorAnswer(404, "not_found", "no conversation conv-9"));
    const e = await thrown(client.getConversation("conv-9"));
    expect(e).toBeInstanceOf(EpicacheApiError);
    expect(e).toMatchObject({
      name: "EpicacheApiError",
      status: 404,
      code: "not_found",
      message: "no conversation conv-9",
      requestId: "req-body",
    });
  });

  it("maps every documented error status, and a 429's retry-after", async () => {
    const cases: [number, string][] = [
      [400, "invalid_argument"],
      [401, "unauthorized"],
      [403, "limit_exceeded"],
      [409, "no_active_version"],
      [413, "payload_too_large"],
      [502, "runner_invalid"],
      [503, "runner_unavailable"],
    ];
    for (const [status, code] of cases) {
      const { client } = fake(() => errorAnswer(status, code, "m"));
      expect(await thrown(client.ask("conv-1", { question: "Q?" }))).toMatchObject({
        status,
        code,
        requestId: "req-body",
        retryAfterSeconds: undefined,
      });
    }
    const { client } = fake(() =>
      json(
        429,
        { error: { code: "rate_limited", message: "too many", requestId: "r" } },
        { "retry-after": "17" },
      ),
    );
    expect(await thrown(client.getConversation("conv-1"))).toMatchObject({
      status: 429,
      code: "rate_limited",
      retryAfterSeconds: 17,
    });
  });

  it("reports an answer that is not the API's as unexpected_response, with the header's request id", async () => {
    const html = fake(
      () =>
        new Response("<html>Bad gateway</html>", {
          status: 502,
          statusText: "Bad Gateway",
          headers: { "x-request-id": "req-proxy" },
        }),
    );
    expect(await thrown(html.client.getConversation("conv-1"))).toMatchObject({
      status: 502,
      code: "unexpected_response",
      requestId: "req-proxy",
      message: expect.stringContaining("Bad gateway"),
    });
    // A success the route does not answer (createTenant answers 201), and a success that is not JSON.
    const status = fake(() => json(200, { tenantId: "t" }), { adminToken: "adm" });
    expect(await thrown(status.client.createTenant("acme"))).toMatchObject({
      status: 200,
      code: "unexpected_response",
    });
    const text = fake(() => new Response("ok", { status: 200 }));
    expect(await thrown(text.client.getConversation("conv-1"))).toMatchObject({
      status: 200,
      code: "unexpected_response",
      requestId: "",
    });
  });

  it("lets a network failure through as it is", async () => {
    const { client } = fake(() => {
      throw new TypeError("fetch failed");
    });
    await expect(client.getConversation("conv-1")).rejects.toThrow(TypeError);
  });
});

describe("EpicacheClient.askStream", () => {
  const ROUTING = {
    rule: "lexical",
    scores: [
      { episode: 0, score: 0.5 },
      { episode: 1, score: 2.25 },
      { episode: 2, score: null },
    ],
  };
  const META = `event: meta\ndata: ${JSON.stringify({ episode: 1, version: V1, routing: ROUTING })}\n\n`;
  const TOKENS = 'event: token\ndata: {"text":"Pot"}\n\nevent: token\ndata: {"text":"tery."}\n\n';
  const DONE = `event: done\ndata: {"answer":"Pottery.","episode":1,"version":"${V1}","tokens":2,"timings":{"queuedMs":0,"loadMs":1,"generateMs":2},"routing":${JSON.stringify(ROUTING)}}\n\n`;

  it("yields typed meta, token and done events, however the stream is cut", async () => {
    const whole = META + TOKENS + DONE;
    await fc.assert(
      fc.asyncProperty(fc.array(fc.nat({ max: whole.length }), { maxLength: 20 }), async (cuts) => {
        const points = [...new Set([0, ...cuts, whole.length])].sort((a, b) => a - b);
        const { client, sent } = fake(() =>
          sse(points.slice(1).map((end, i) => whole.slice(points[i], end))),
        );
        const got = await events(client.askStream("conv-1", { question: "What?" }));
        expect(got.map((e) => e.event)).toEqual(["meta", "token", "token", "done"]);
        expect(got[0]).toEqual({
          event: "meta",
          data: { episode: 1, version: V1, routing: ROUTING },
        });
        expect(
          got
            .filter((e) => e.event === "token")
            .map((e) => (e.event === "token" ? e.data.text : ""))
            .join(""),
        ).toBe("Pottery.");
        const done = got[3];
        expect(done.event === "done" && done.data.answer).toBe("Pottery.");
        expect(done.event === "done" && done.data.timings.generateMs).toBe(2);
        expect(JSON.parse(sent[0].body!)).toEqual({ question: "What?", stream: true });
        expect(sent[0].headers.accept).toBe("text/event-stream");
      }),
      { numRuns: 100 },
    );
  });

  it("throws an error event as an EpicacheApiError with its code's status, after the events before it", async () => {
    const { client } = fake(() =>
      sse([
        META,
        'event: token\ndata: {"text":"Pot"}\n\n',
        'event: error\ndata: {"error":{"code":"runner_unavailable","message":"no runner could answer; try again shortly","requestId":"req-9"}}\n\n',
      ]),
    );
    const seen: string[] = [];
    const e = await thrown(
      (async () => {
        for await (const event of client.askStream("conv-1", { question: "What?" }))
          seen.push(event.event);
      })(),
    );
    expect(seen).toEqual(["meta", "token"]);
    expect(e).toBeInstanceOf(EpicacheApiError);
    expect(e).toMatchObject({ status: 503, code: "runner_unavailable", requestId: "req-9" });
  });

  it("throws an error answer at the first step, and a stream that ends without done as unexpected_response", async () => {
    const refused = fake(() => errorAnswer(409, "no_active_version", "not yet"));
    expect(
      await thrown(events(refused.client.askStream("conv-1", { question: "What?" }))),
    ).toMatchObject({ status: 409, code: "no_active_version" });
    const cut = fake(() => sse([META, TOKENS]));
    expect(
      await thrown(events(cut.client.askStream("conv-1", { question: "What?" }))),
    ).toMatchObject({
      code: "unexpected_response",
      requestId: "req-stream",
      message: expect.stringMatching(/without a done or error/),
    });
    const notStream = fake(() => json(200, { answer: "x" }));
    expect(
      await thrown(events(notStream.client.askStream("conv-1", { question: "What?" }))),
    ).toMatchObject({
      code: "unexpected_response",
      message: expect.stringMatching(/instead of server-sent events/),
    });
  });

  it("skips events it does not know, and closes the stream when the caller stops", async () => {
    let cancelled = false;
    const { client } = fake(() =>
      sse([META, "event: ping\ndata: {}\n\n", TOKENS, DONE], () => (cancelled = true)),
    );
    for await (const e of client.askStream("conv-1", { question: "What?" })) {
      expect(e.event).toBe("meta");
      break;
    }
    expect(cancelled).toBe(true);
    const all = fake(() => sse([META, "event: ping\ndata: {}\n\n", ": comment\n\n", DONE]));
    expect(
      (await events(all.client.askStream("conv-1", { question: "What?" }))).map((e) => e.event),
    ).toEqual(["meta", "done"]);
  });
});

describe("EpicacheClient.triggerRebuild", () => {
  it("signs a Standard Webhook that the edge's verifyWebhook accepts, for the exact body sent", async () => {
    const secret = newWebhookSecret();
    const { client, sent } = fake(
      () =>
        json(202, {
          conversationId: "conv-1",
          version: V1,
          status: "queued",
          duplicate: false,
          followUp: false,
        }),
      {},
    );
    const result = await client.triggerRebuild("t-1", secret, "conv-1");
    expect(result).toEqual({
      conversationId: "conv-1",
      version: V1,
      status: "queued",
      duplicate: false,
      followUp: false,
      httpStatus: 202,
    });
    const [request] = sent;
    expect(request.url).toBe("http://edge.test/v1/webhooks/t-1/rebuild");
    expect(request.headers.authorization).toBeUndefined();
    expect(JSON.parse(request.body!)).toEqual({ conversationId: "conv-1" });
    const verified = await verifyWebhook(secret, (name) => request.headers[name], request.body!, {
      now: Date.now() / 1000,
    });
    expect(verified.id).toMatch(/^msg_[0-9a-f-]{36}$/);
    // Another secret, or another body, does not verify.
    await expect(
      verifyWebhook(newWebhookSecret(), (name) => request.headers[name], request.body!, {
        now: Date.now() / 1000,
      }),
    ).rejects.toMatchObject({ code: "webhook_invalid" });
    await expect(
      verifyWebhook(secret, (name) => request.headers[name], '{"conversationId":"conv-2"}', {
        now: Date.now() / 1000,
      }),
    ).rejects.toMatchObject({ code: "webhook_invalid" });
  });

  it("reuses a given webhook id and timestamp (a retried delivery), and answers 200 for a duplicate", async () => {
    const secret = newWebhookSecret();
    const { client, sent } = fake(
      () =>
        json(200, {
          conversationId: "conv-1",
          version: V1,
          status: "submitted",
          duplicate: true,
          followUp: false,
        }),
      {},
    );
    const result = await client.triggerRebuild("t-1", secret, "conv-1", {
      webhookId: "msg_retry",
      timestamp: 1_800_000_000,
    });
    expect(result).toMatchObject({ duplicate: true, httpStatus: 200 });
    expect(sent[0].headers["webhook-id"]).toBe("msg_retry");
    expect(sent[0].headers["webhook-timestamp"]).toBe("1800000000");
    expect(
      await verifyWebhook(secret, (name) => sent[0].headers[name], sent[0].body!, {
        now: 1_800_000_000,
      }),
    ).toEqual({ id: "msg_retry", timestamp: 1_800_000_000 });
  });

  it("throws a refused webhook as webhook_invalid", async () => {
    const { client } = fake(
      () => errorAnswer(401, "webhook_invalid", "no v1 signature matches"),
      {},
    );
    expect(await thrown(client.triggerRebuild("t-1", newWebhookSecret(), "conv-1"))).toMatchObject({
      status: 401,
      code: "webhook_invalid",
    });
  });
});

describe("EpicacheClient.waitForRebuild", () => {
  it("polls until the version is active, reporting progress", async () => {
    const states = [
      conversation({}, { version: V1, status: "queued" }),
      conversation(
        {},
        { version: V1, status: "submitted", stage: "prefill", progress: 40, etaSeconds: 30 },
      ),
      conversation(
        {
          activeVersion: V1,
          active: {
            version: V1,
            kind: "full",
            reason: "first build",
            baseVersion: null,
            messageCount: 3,
          },
        },
        { version: V1, status: "succeeded", progress: 100 },
      ),
    ];
    const { client, sent } = fake((_s, i) => json(200, states[Math.min(i, states.length - 1)]));
    const progress: string[] = [];
    const done = await client.waitForRebuild("conv-1", {
      version: V1,
      intervalMs: 1,
      onProgress: (r) => progress.push(`${r.status} ${r.stage ?? "-"} ${r.progress ?? 0}`),
    });
    expect(done.active).toMatchObject({ kind: "full", messageCount: 3 });
    expect(progress).toEqual(["queued - 0", "submitted prefill 40", "succeeded - 100"]);
    expect(sent).toHaveLength(3);
  });

  it("takes a later active version as done, and throws when the version fails", async () => {
    const later = fake(() =>
      json(200, conversation({ activeVersion: V2 }, { version: V2, status: "succeeded" })),
    );
    expect(
      (await later.client.waitForRebuild("conv-1", { version: V1, intervalMs: 1 })).activeVersion,
    ).toBe(V2);
    const failed = fake(() =>
      json(
        200,
        conversation(
          {},
          {
            version: V1,
            status: "failed",
            error: { code: "runner_unavailable", message: "no runner could answer" },
          },
        ),
      ),
    );
    const e = await thrown(failed.client.waitForRebuild("conv-1", { version: V1, intervalMs: 1 }));
    expect(e).toBeInstanceOf(EpicacheRebuildError);
    expect(e).toMatchObject({ reason: "failed", code: "runner_unavailable", version: V1 });
  });

  it("without a version, waits until no rebuild is in flight and no follow-up waits", async () => {
    const states = [
      conversation({ activeVersion: V1, followUp: true }, { version: V1, status: "succeeded" }),
      conversation({ activeVersion: V1 }, { version: V2, status: "submitted" }),
      conversation({ activeVersion: V2 }, { version: V2, status: "succeeded" }),
    ];
    const { client, sent } = fake((_s, i) => json(200, states[Math.min(i, states.length - 1)]));
    expect((await client.waitForRebuild("conv-1", { intervalMs: 1 })).activeVersion).toBe(V2);
    expect(sent).toHaveLength(3);
    const never = fake(() => json(200, conversation()));
    expect((await never.client.waitForRebuild("conv-1")).rebuild).toBeNull();
  });

  it("times out with the last state, and stops when aborted", async () => {
    const { client } = fake(() =>
      json(
        200,
        conversation({}, { version: V1, status: "submitted", stage: "prefill", progress: 10 }),
      ),
    );
    const e = await thrown(
      client.waitForRebuild("conv-1", { version: V1, timeoutMs: 30, intervalMs: 5 }),
    );
    expect(e).toMatchObject({
      name: "EpicacheRebuildError",
      reason: "timeout",
      code: "timeout",
      version: V1,
      message: expect.stringContaining("prefill 10%"),
    });
    const abort = new AbortController();
    const waiting = client.waitForRebuild("conv-1", {
      version: V1,
      intervalMs: 10_000,
      signal: abort.signal,
    });
    setTimeout(() => abort.abort(new Error("stopped")), 20);
    await expect(waiting).rejects.toThrow("stopped");
  });
});

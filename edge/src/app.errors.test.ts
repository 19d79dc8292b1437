/**
 * Errors that show tenants nothing internal: every route that can fail upstream (a question, as
 * JSON and streamed, with its embedding by a runner or Workers AI; the rebuild consumer and the
 * runner callback, whose failures a tenant reads on `GET /v1/conversations/{id}`; the poll that
 * reading does), and the app's onError. The fake runners fail with answers that carry an internal
 * URL and an exception's text; every answer must be `{error: {code, message, requestId}}` with the
 * code's fixed text, the id of the `x-request-id` header, and none of what the runner said, which
 * must be in the log under that id instead.
 */
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { PUBLIC_MESSAGES } from "@epicache/shared";
import { completeVersion, getVersion } from "./db/versions";
import {
  installFakeRunners,
  json,
  jobStatus,
  type RunnerHandler,
  type RunnerRequest,
} from "./testing/fake-runner";
import { ADMIN_TOKEN, RUNNERS, call, newTenant, testEnv } from "./testing/helpers";
import { captureLogs } from "./testing/logs";
import { consume, recordingQueue, runnerCallback, sendWebhook } from "./testing/rebuild-flow";
import { MINILM, V1, V2, seedTenant } from "./testing/seed";

afterEach(() => vi.restoreAllMocks());

/** What failing runners say: an internal URL, an exception and where it was thrown. */
const INTERNAL = "http://10.20.30.40:8788/v1/generate";
const EXCEPTION =
  "TypeError: Cannot read properties of undefined (reading 'kv') at Answers.generate (/srv/epicache/gpu-runner/src/server/answers.ts:57:13)";
const LEAKY = `${EXCEPTION} (${INTERNAL})`;
/** None of these may be in an answer to a tenant. */
const SECRETS = [
  ...RUNNERS.map((r) => new URL(r).host),
  "10.20.30.40",
  "Cannot read properties",
  "/srv/epicache",
  "answers.ts",
];

type ErrorBody = { error: { code: string; message: string; requestId: string } };

/** `text` holds none of SECRETS. */
function expectNothingInternal(text: string): void {
  for (const secret of SECRETS) expect(text, `an answer holds ${secret}`).not.toContain(secret);
}

/** The answer is `status` with `{error: {code, message, requestId}}`, the header's id, nothing internal; returns the id. */
async function expectOpaque(
  res: Response,
  status: number,
  code: keyof typeof PUBLIC_MESSAGES,
  message: string = PUBLIC_MESSAGES[code],
): Promise<string> {
  const text = await res.text();
  expect(res.status, text).toBe(status);
  const body = JSON.parse(text) as ErrorBody;
  expect(body).toEqual({ error: { code, message, requestId: res.headers.get("x-request-id") } });
  expect(body.error.requestId).toMatch(/^[A-Za-z0-9._:-]{1,128}$/);
  expectNothingInternal(text);
  return body.error.requestId;
}

/** Healthy answers of a runner: embeddings of [1, 0], answers naming the version, streamed or not. */
function healthy({ path, body }: RunnerRequest): Response {
  if (path === "/v1/embed") return json({ model: MINILM, dimension: 2, vectors: [[1, 0]] });
  const q = body as {
    tenant: string;
    conversation: string;
    version: string;
    episode: number;
    stream: boolean;
  };
  const done = {
    answer: `from ${q.version}`,
    ...q,
    tokens: 2,
    timings: { queuedMs: 0, loadMs: 0, generateMs: 1 },
  };
  if (!q.stream) return json(done);
  return sse(
    `event: token\ndata: {"text":"from"}\n\nevent: done\ndata: ${JSON.stringify(done)}\n\n`,
  );
}

function sse(text: string | ReadableStream<Uint8Array>): Response {
  return new Response(text, { headers: { "content-type": "text/event-stream" } });
}

/** Runners that fail `path` with `fault` and answer the rest. */
function failing(path: string, fault: RunnerHandler): RunnerRequest[] {
  return installFakeRunners((request) =>
    request.path === path ? fault(request) : healthy(request),
  );
}

const ask = (key: string, body: unknown, environment?: Env) =>
  call("POST", "/v1/conversations/conv-1/query", { body, key, env: environment });

/** How runners fail, and what the tenant is told. */
const FAULTS: {
  name: string;
  fault: RunnerHandler;
  status: number;
  code: keyof typeof PUBLIC_MESSAGES;
  logged: string;
}[] = [
  {
    name: "every runner down",
    fault: () => {
      throw new TypeError(`Network connection lost (${INTERNAL})`);
    },
    status: 503,
    code: "runner_unavailable",
    logged: INTERNAL,
  },
  {
    name: "every runner 500 with an exception",
    fault: () => json({ error: { code: "internal", message: LEAKY } }, 500),
    status: 503,
    code: "runner_unavailable",
    logged: EXCEPTION,
  },
  {
    name: "every runner 502 with a proxy's HTML page",
    fault: () =>
      new Response(`<html><h1>502 Bad Gateway</h1><pre>${LEAKY}</pre></html>`, {
        status: 502,
        headers: { "content-type": "text/html" },
      }),
    status: 503,
    code: "runner_unavailable",
    logged: EXCEPTION,
  },
  {
    name: "a reply that is not JSON",
    fault: () => new Response(`{"answer": ${LEAKY}`, { status: 200 }),
    status: 502,
    code: "runner_invalid",
    logged: EXCEPTION,
  },
  {
    name: "a reply of another shape",
    fault: () => json({ detail: LEAKY }),
    status: 502,
    code: "runner_invalid",
    logged: EXCEPTION,
  },
  {
    name: "a 401 about the edge's request",
    fault: () =>
      json({ error: { code: "unauthorized", message: `replayed request to ${INTERNAL}` } }, 401),
    status: 502,
    code: "runner_invalid",
    logged: INTERNAL,
  },
  {
    name: "a 409 about the version, naming internals",
    fault: () => json({ error: { code: "model_mismatch", message: LEAKY } }, 409),
    status: 409,
    code: "model_mismatch",
    logged: EXCEPTION,
  },
];

describe("a question while runners fail", () => {
  const cases = FAULTS.flatMap((f) =>
    ["/v1/embed", "/v1/generate"].map((path) => ({ ...f, path })),
  );
  it.each(cases)(
    "$path: $name → $status $code, nothing internal in the answer, all of it in the log",
    async ({ path, fault, status, code, logged }) => {
      const t = await seedTenant("leaks");
      failing(path, fault);
      const logs = captureLogs();
      const id = await expectOpaque(await ask(t.apiKey, { question: "Where?" }), status, code);
      expect(logs.of(id)).toContain(logged);
      expect(logs.of(id)).toMatch(/runner-[abc]\.test/);
    },
  );

  it("streamed: every runner down or failing is the same JSON error, before any event", async () => {
    const t = await seedTenant("leaks");
    for (const { fault, status, code } of FAULTS.filter((f) => f.status === 503)) {
      failing("/v1/generate", fault);
      await expectOpaque(await ask(t.apiKey, { question: "Where?", stream: true }), status, code);
      vi.restoreAllMocks();
    }
  });

  it("streamed: a reply that is not server-sent events is 502 runner_invalid", async () => {
    const t = await seedTenant("leaks");
    failing("/v1/generate", () => json({ answer: LEAKY }));
    const logs = captureLogs();
    const id = await expectOpaque(
      await ask(t.apiKey, { question: "Where?", stream: true }),
      502,
      "runner_invalid",
    );
    expect(logs.of(id)).toContain(EXCEPTION);
  });
});

/** The events of a streamed answer. */
function events(text: string): { event: string; data: unknown }[] {
  return text
    .split("\n\n")
    .filter((b) => b.trim() !== "")
    .map((block) => ({
      event: /^event: (.*)$/m.exec(block)?.[1] ?? "message",
      data: JSON.parse(/^data: (.*)$/m.exec(block)?.[1] ?? "null") as unknown,
    }));
}

/** A stream of these chunks, then `end` (close, or an error). */
function chunks(parts: string[], end: Error | null = null): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  return new ReadableStream({
    start(controller) {
      for (const p of parts) controller.enqueue(encoder.encode(p));
      if (end === null) controller.close();
      else controller.error(end);
    },
  });
}

describe("a streamed answer whose runner fails while it streams", () => {
  const done = (version: string) =>
    `event: done\ndata: ${JSON.stringify({ answer: "from", version, episode: 10, tokens: 1 })}\n\n`;
  const cases: {
    name: string;
    stream: () => ReadableStream<Uint8Array>;
    code: keyof typeof PUBLIC_MESSAGES;
    logged: string;
  }[] = [
    {
      name: "an error event with an exception",
      stream: () =>
        chunks([
          'event: token\ndata: {"text":"fr"}\n\n',
          `event: error\ndata: ${JSON.stringify({ error: { code: "internal", message: LEAKY } })}\n\n`,
        ]),
      code: "internal",
      logged: EXCEPTION,
    },
    {
      name: "an error event of a code about the version",
      stream: () =>
        chunks([
          `event: error\ndata: ${JSON.stringify({ error: { code: "store_unavailable", message: LEAKY } })}\n\n`,
        ]),
      code: "store_unavailable",
      logged: EXCEPTION,
    },
    {
      name: "an error event that is not JSON",
      stream: () => chunks([`event: error\ndata: ${LEAKY}\n\n`]),
      code: "runner_invalid",
      logged: EXCEPTION,
    },
    {
      name: "a stream that breaks",
      stream: () => chunks(['event: token\ndata: {"text":"fr"}\n\n'], new Error(LEAKY)),
      code: "runner_unavailable",
      logged: EXCEPTION,
    },
    {
      name: "a stream that ends without done",
      stream: () =>
        chunks(['event: token\ndata: {"text":"fr"}\n\n', `event: debug\ndata: ${LEAKY}\n\n`]),
      code: "runner_invalid",
      logged: EXCEPTION,
    },
  ];
  it.each(cases)(
    "$name → a final error event of the API's error body, nothing internal",
    async ({ stream, code, logged }) => {
      const t = await seedTenant("stream");
      failing("/v1/generate", () => sse(stream()));
      const logs = captureLogs();
      const res = await ask(t.apiKey, { question: "Where?", stream: true });
      expect(res.status).toBe(200);
      const text = await res.text();
      expectNothingInternal(text);
      const all = events(text);
      expect(all[0]).toEqual({
        event: "meta",
        data: { episode: 10, version: V1, routing: expect.objectContaining({ rule: "centroid" }) },
      });
      const requestId = res.headers.get("x-request-id") as string;
      expect(all.at(-1)).toEqual({
        event: "error",
        data: { error: { code, message: PUBLIC_MESSAGES[code], requestId } },
      });
      expect(all.filter((e) => e.event === "error")).toHaveLength(1);
      expect(logs.lines.join("\n")).toContain(logged);
      expect(logs.of(requestId)).not.toBe("");
    },
  );

  it("passes tokens and done through, whatever chunks they come in, and drops events it does not know", async () => {
    const t = await seedTenant("stream");
    const whole = `event: token\ndata: {"text":"fr"}\n\nevent: debug\ndata: ${LEAKY}\n\nevent: token\r\ndata: {"text":"om"}\r\n\r\n${done(V1)}`;
    // Cut everywhere, even inside "\r\n" and "\n\n".
    failing("/v1/generate", () => sse(chunks(whole.match(/[\s\S]{1,3}/g) ?? [])));
    const res = await ask(t.apiKey, { question: "Where?", stream: true });
    const text = await res.text();
    expectNothingInternal(text);
    expect(events(text).map((e) => e.event)).toEqual(["meta", "token", "token", "done"]);
    expect(events(text).at(-1)?.data).toMatchObject({ answer: "from", version: V1 });
  });
});

describe("a question embedded by Workers AI while it fails", () => {
  it("503 embedder_unavailable for an exception or an embedding of another dimension, nothing internal", async () => {
    const t = await seedTenant("ai");
    await completeVersion(
      env.DB,
      t.tenantId,
      "conv-1",
      {
        version: V2,
        episodes: [
          { id: 10, centroid: [1, 0] },
          { id: 11, centroid: [0, 1] },
        ],
        embedder: { modelId: "BAAI/bge-small-en-v1.5", dimension: 2 },
        manifestKey: "k",
        contextTokens: 1,
      },
      new Date().toISOString(),
    );
    installFakeRunners(healthy);
    const failures = [
      async () => {
        throw new Error(`AiError: 3040: capacity exceeded at ${INTERNAL}: ${EXCEPTION}`);
      },
      async () => ({ shape: [1, 3], data: [[0.1, 0.2, 0.3]] }),
    ];
    for (const run of failures) {
      const logs = captureLogs();
      const id = await expectOpaque(
        await ask(t.apiKey, { question: "Where?" }, testEnv({ AI: { run } as unknown as Ai })),
        503,
        "embedder_unavailable",
      );
      expect(logs.of(id)).toMatch(/capacity exceeded|3 dimensions/);
      vi.restoreAllMocks();
      installFakeRunners(healthy);
    }
  });
});

/** The tenant's view of conv-1 (`GET`), checked to hold nothing internal. */
async function conversationState(
  apiKey: string,
  conversation = "conv-1",
  environment?: Env,
): Promise<{
  activeVersion: string | null;
  rebuild: {
    version: string;
    status: string;
    error: { code: string; message: string } | null;
  } | null;
}> {
  const res = await call("GET", `/v1/conversations/${conversation}`, {
    key: apiKey,
    env: environment,
  });
  const text = await res.text();
  expect(res.status, text).toBe(200);
  expectNothingInternal(text);
  return JSON.parse(text);
}

/** A tenant with conversation `c` of two messages and a queued rebuild of it (as a webhook leaves it). */
async function queuedRebuild() {
  const t = await newTenant("rebuilds");
  await call("POST", "/v1/conversations/c/messages", {
    body: {
      messages: [
        { id: "m1", speaker: "Ann", text: "Hi" },
        { id: "m2", speaker: "Bob", text: "Yo" },
      ],
    },
    key: t.apiKey,
  });
  const flow = recordingQueue();
  const { version } = (await (await sendWebhook(t, "c", flow.environment)).json()) as {
    version: string;
  };
  return { ...t, ...flow, version };
}

describe("rebuild failures a tenant reads", () => {
  const refusals: { name: string; fault: RunnerHandler; code: keyof typeof PUBLIC_MESSAGES }[] = [
    {
      name: "refused as the tenant's transcript, naming internals",
      fault: () => json({ error: { code: "conversation_invalid", message: LEAKY } }, 400),
      code: "conversation_invalid",
    },
    {
      name: "refused for a reason about the edge's request",
      fault: () => json({ error: { code: "unauthorized", message: LEAKY } }, 401),
      code: "runner_invalid",
    },
    {
      name: "taken with a reply that is not a job",
      fault: () => new Response(`<html>${LEAKY}</html>`, { status: 202 }),
      code: "runner_invalid",
    },
  ];
  it.each(refusals)(
    "the consumer: a rebuild $name fails with the code's fixed text; the runner's words only in the log",
    async ({ fault, code }) => {
      const t = await queuedRebuild();
      failing("/v1/rebuild", fault);
      const logs = captureLogs();
      expect((await consume(t.jobs[0], t.environment)).explicitAcks).toEqual(["msg-1"]);
      expect(await conversationState(t.apiKey, "c")).toMatchObject({
        rebuild: {
          version: t.version,
          status: "failed",
          error: { code, message: PUBLIC_MESSAGES[code] },
        },
      });
      expect(logs.lines.filter((l) => l.includes(t.version)).join("\n")).toContain(EXCEPTION);
    },
  );

  it("the consumer: every runner down is retried, then failed from the dead-letter queue with a fixed text", async () => {
    const t = await queuedRebuild();
    failing("/v1/rebuild", () => json({ error: { code: "internal", message: LEAKY } }, 500));
    const logs = captureLogs();
    expect((await consume(t.jobs[0], t.environment)).retryMessages).toHaveLength(1);
    expect((await consume(t.jobs[0], t.environment, "epicache-rebuild-dlq")).explicitAcks).toEqual([
      "msg-1",
    ]);
    expect(await conversationState(t.apiKey, "c")).toMatchObject({
      rebuild: {
        status: "failed",
        error: { code: "runner_unavailable", message: expect.any(String) },
      },
    });
    expect(logs.lines.filter((l) => l.includes(t.version)).join("\n")).toContain(EXCEPTION);
  });

  it("the runner callback: a failed job's exception is logged, and the tenant reads `internal` with its fixed text; an unknown code is runner_invalid", async () => {
    for (const [error, code] of [
      [{ code: "internal", message: LEAKY }, "internal"],
      [{ code: "segfault", message: LEAKY }, "runner_invalid"],
    ] as const) {
      const t = await seedTenant("callback");
      const logs = captureLogs();
      const res = await runnerCallback(
        jobStatus({
          id: t.jobV2,
          tenant: t.tenantId,
          conversation: "conv-1",
          version: V2,
          status: "failed",
          error,
        }),
        testEnv(),
      );
      const text = await res.text();
      expect(res.status, text).toBe(200);
      expectNothingInternal(text);
      expect(await conversationState(t.apiKey)).toMatchObject({
        activeVersion: V1,
        rebuild: { version: V2, status: "failed", error: { code, message: PUBLIC_MESSAGES[code] } },
      });
      expect(
        logs.lines.filter((l) => l.includes(V2) && l.includes(t.tenantId)).join("\n"),
      ).toContain(EXCEPTION);
      vi.restoreAllMocks();
    }
  });

  it("the runner callback: a result that cannot be used is 502 runner_invalid with the request id; what is wrong is logged under it", async () => {
    const t = await seedTenant("callback");
    const logs = captureLogs();
    const res = await runnerCallback(
      jobStatus({
        id: t.jobV2,
        tenant: t.tenantId,
        conversation: "conv-1",
        version: V2,
        centroids: [
          [1, 0],
          [0, 1, 0],
        ],
      }),
      testEnv(),
    );
    const id = await expectOpaque(res, 502, "runner_invalid");
    expect(logs.of(id)).toContain("centroid is not 2 finite numbers");
    expect(await getVersion(env.DB, t.tenantId, "conv-1", V2)).toMatchObject({
      status: "submitted",
    });
  });

  it("reading the conversation polls its runner: failures there never show, and what it stores names no runner", async () => {
    const t = await seedTenant("poll");
    /** V2 submitted again, `ageMs` ago. */
    const submittedAgo = async (ageMs: number) => {
      const at = new Date(Date.now() - ageMs).toISOString();
      await env.DB.prepare(
        "UPDATE versions SET status = 'submitted', error_code = NULL, error_message = NULL, updated_at = ? WHERE tenant_id = ? AND version = ?",
      )
        .bind(at, t.tenantId, V2)
        .run();
    };
    const stale = () => submittedAgo(3600_000);
    // Failing runners: the rebuild stays submitted while it is recent, and fails once it is stale.
    for (const { fault } of FAULTS.slice(0, 4)) {
      installFakeRunners(fault);
      await submittedAgo(0);
      expect(await conversationState(t.apiKey)).toMatchObject({
        rebuild: { version: V2, status: "submitted" },
      });
      await stale();
      const state = await conversationState(t.apiKey);
      expect(state.rebuild).toMatchObject({
        status: "failed",
        error: {
          code: "runner_unavailable",
          message: expect.stringContaining("no word from the runner"),
        },
      });
      vi.restoreAllMocks();
    }
    // A runner that no longer knows the job, with a leaky 404.
    installFakeRunners(() => json({ error: { code: "not_found", message: LEAKY } }, 404));
    await stale();
    expect((await conversationState(t.apiKey)).rebuild).toMatchObject({
      status: "failed",
      error: { code: "runner_unavailable", message: expect.stringContaining("no longer knows") },
    });
    vi.restoreAllMocks();
    // A job that succeeded with a result that cannot be used.
    installFakeRunners(() =>
      json(
        jobStatus({
          id: t.jobV2,
          tenant: t.tenantId,
          conversation: "conv-1",
          version: V2,
          centroids: [
            [1, 0],
            [0, 1, 0],
          ],
        }),
      ),
    );
    await stale();
    expect((await conversationState(t.apiKey)).rebuild).toMatchObject({
      status: "failed",
      error: { code: "runner_invalid", message: PUBLIC_MESSAGES.runner_invalid },
    });
  });
});

describe("the app's onError", () => {
  it("a Worker var naming an internal runner is 500 internal, logged, never answered", async () => {
    const t = await seedTenant("config");
    const logs = captureLogs();
    const id = await expectOpaque(
      await call("GET", "/v1/conversations/conv-1", {
        key: t.apiKey,
        env: testEnv({ RUNNER_URLS: `${RUNNERS[0]},${INTERNAL}` }),
      }),
      500,
      "internal",
    );
    expect(logs.of(id)).toContain(INTERNAL);
  });

  it("an exception from D1 is 500 internal, logged, never answered", async () => {
    const t = await seedTenant("d1");
    const broken = {
      prepare: () => {
        throw new Error(`D1_ERROR: ${LEAKY}`);
      },
      batch: async () => {
        throw new Error(LEAKY);
      },
    } as unknown as D1Database;
    const logs = captureLogs();
    const id = await expectOpaque(
      await call("GET", "/v1/conversations/conv-1", {
        key: t.apiKey,
        env: testEnv({ DB: broken }),
      }),
      500,
      "internal",
    );
    expect(logs.of(id)).toContain(EXCEPTION);
  });

  it("a queue that refuses a webhook's rebuild is 500 internal, logged, never answered", async () => {
    const t = await seedTenant("queue");
    const queue = {
      send: async () => {
        throw new Error(`Queue send failed: ${LEAKY}`);
      },
      sendBatch: async () => {},
    } as unknown as Queue;
    const logs = captureLogs();
    const id = await expectOpaque(
      await sendWebhook(t, "shared-name", testEnv({ REBUILD_QUEUE: queue })),
      500,
      "internal",
    );
    expect(logs.of(id)).toContain(EXCEPTION);
  });

  it("keeps the specific messages of a tenant's own mistakes, with the request id", async () => {
    const t = await seedTenant("own");
    await expectOpaque(
      await call("GET", "/v1/conversations/nope", { key: t.apiKey }),
      404,
      "not_found",
      "no conversation nope",
    );
    await expectOpaque(
      await call("GET", "/v1/nowhere", { key: t.apiKey }),
      404,
      "not_found",
      "no route GET /v1/nowhere",
    );
    await expectOpaque(
      await ask(t.apiKey, { question: "   " }),
      400,
      "invalid_argument",
      "question: the question is blank",
    );
    await expectOpaque(
      await call("GET", "/v1/conversations/conv-1", { key: "ek_wrong" }),
      401,
      "unauthorized",
      "unknown API key",
    );
  });
});

describe("request ids", () => {
  it("answers a new id on every response, or the request's own when well-formed: cf-ray first, then x-request-id", async () => {
    const a = await call("GET", "/healthz");
    const b = await call("GET", "/healthz");
    expect(a.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
    expect(a.headers.get("x-request-id")).not.toBe(b.headers.get("x-request-id"));
    expect(
      (
        await call("GET", "/healthz", { headers: { "x-request-id": "client-42.a:b_c" } })
      ).headers.get("x-request-id"),
    ).toBe("client-42.a:b_c");
    expect(
      (
        await call("GET", "/healthz", {
          headers: { "cf-ray": "8a1b2c3d4e5f6a7b-SJC", "x-request-id": "client-42" },
        })
      ).headers.get("x-request-id"),
    ).toBe("8a1b2c3d4e5f6a7b-SJC");
    for (const bad of ["has space", "a/b", "<script>", "x".repeat(129), `${INTERNAL}`]) {
      const res = await call("POST", "/v1/tenants", {
        body: {},
        key: ADMIN_TOKEN,
        headers: { "x-request-id": bad },
      });
      const id = res.headers.get("x-request-id");
      expect(id, bad).not.toBe(bad);
      expect(id).toMatch(/^[0-9a-f-]{36}$/);
      expect(((await res.json()) as ErrorBody).error.requestId).toBe(id);
    }
  });
});

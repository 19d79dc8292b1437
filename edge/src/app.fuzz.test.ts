/**
 * Property-based fuzz of every public route of the edge (fast-check, inside workerd): hostile path
 * parameters, bodies and headers, sent with tenant A's credentials. For every request: never a 5xx;
 * every rejection a 4xx whose body is exactly `{error: {code, message, requestId}}` with a code of
 * ERROR_CODES that maps to that status and the id of the `x-request-id` header; and tenant B's rows
 * (seeded with the same ids as A's) never change.
 * A failure prints fast-check's seed and the shrunk request; rerun with `{ seed, path }` in RUNS.
 */
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import fc from "fast-check";
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import {
  ERROR_CODES,
  httpStatusOf,
  newWebhookSecret,
  signRequest,
  signWebhook,
  type ErrorCode,
  type TranscriptMessage,
} from "@epicache/shared";
import { readTranscript } from "./db/messages";
import worker from "./index";
import {
  HOSTILE_SEGMENTS,
  body,
  contentType,
  headerValue,
  mostly,
  nastyString,
  pathSegment,
  rarelyPresent,
  wrongType,
} from "./testing/arbitraries";
import { installFakeRunners, json, jobStatus } from "./testing/fake-runner";
import { ADMIN_TOKEN, RUNNER_SECRET, testEnv } from "./testing/helpers";
import { MINILM, V1, V2, seedTenant, snapshotTenant, type SeededTenant } from "./testing/seed";

/** Runs per route: enough to reach every branch of the arbitraries, few enough for a busy machine. */
const RUNS: fc.Parameters<unknown> = { numRuns: 100, endOnFailure: true };

interface FuzzRequest {
  method: string;
  path: string;
  headers: Record<string, string | undefined>;
  body?: string;
}

let a: SeededTenant;
let b: SeededTenant;
let bBefore: Record<string, unknown[]>;
const queued: unknown[] = [];
// Webhooks enqueue into a recording queue, so no consumer runs behind the fuzz's back.
const environment = testEnv({
  REBUILD_QUEUE: {
    send: async (job: unknown) => void queued.push(job),
    sendBatch: async () => {},
  } as unknown as Queue,
});

beforeAll(async () => {
  a = await seedTenant("A");
  b = await seedTenant("B");
  bBefore = await snapshotTenant(b.tenantId);
});

beforeEach(() => {
  // Healthy runners: questions about A's conversations are answered, A's job is running.
  installFakeRunners(({ path, body: request }) => {
    if (path === "/v1/embed") return json({ model: MINILM, dimension: 2, vectors: [[1, 0]] });
    if (path === "/v1/generate") {
      const q = request as {
        tenant: string;
        conversation: string;
        version: string;
        episode: number;
        stream: boolean;
      };
      const done = {
        answer: "an answer",
        tenant: q.tenant,
        conversation: q.conversation,
        version: q.version,
        episode: q.episode,
        tokens: 2,
        timings: { queuedMs: 0, loadMs: 0, generateMs: 1 },
      };
      return q.stream
        ? new Response(`event: done\ndata: ${JSON.stringify(done)}\n\n`, {
            headers: { "content-type": "text/event-stream" },
          })
        : json(done);
    }
    if (path === `/v1/jobs/${a.jobV2}`)
      return json(
        jobStatus({
          id: a.jobV2,
          tenant: a.tenantId,
          conversation: "conv-1",
          version: V2,
          status: "running",
        }),
      );
    return json({ error: { code: "not_found", message: path } }, 404);
  });
});

afterEach(async () => {
  vi.restoreAllMocks();
  expect(
    await snapshotTenant(b.tenantId),
    "tenant B's rows after fuzzing with A's credentials",
  ).toEqual(bBefore);
});

/** Sends a request to the worker; undefined for one no client could build (fetch refuses it). */
async function send(r: FuzzRequest): Promise<Response | undefined> {
  let request: Request;
  try {
    const headers = new Headers();
    for (const [name, value] of Object.entries(r.headers))
      if (value !== undefined) headers.set(name, value);
    request = new Request(`http://edge.test${r.path}`, { method: r.method, headers, body: r.body });
  } catch {
    return undefined;
  }
  const ctx = createExecutionContext();
  const res = await worker.fetch(request, environment, ctx);
  await waitOnExecutionContext(ctx);
  return res;
}

/** Under 500, and every 4xx is exactly `{error: {code, message, requestId}}` with a known code of that status and the header's id. */
async function expectWellFormed(r: FuzzRequest, res: Response): Promise<void> {
  const label = `${r.method} ${r.path.slice(0, 120)} → ${res.status}`;
  const text = await res.text();
  if (res.status >= 500) throw new Error(`${label}: ${text.slice(0, 300)}`);
  if (res.status < 400 || r.method === "HEAD") return;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new Error(`${label}: the error body is not JSON: ${text.slice(0, 200)}`);
  }
  expect(parsed, label).toEqual({
    error: {
      code: expect.any(String),
      message: expect.any(String),
      requestId: res.headers.get("x-request-id"),
    },
  });
  expect(res.headers.get("x-request-id"), label).toMatch(/^[A-Za-z0-9._:-]{1,128}$/);
  const { code } = (parsed as { error: { code: string } }).error;
  expect(Object.keys(ERROR_CODES), label).toContain(code);
  expect(httpStatusOf(code as ErrorCode), `${label}: code ${code}`).toBe(res.status);
}

/**
 * Fuzzes one route: `plan` draws what to send, `build` turns it into a request (signing it, say).
 * At least `minStatuses` different statuses must come back, so that a fuzz stuck at one gate (every request
 * refused by authentication, say) fails instead of passing without reaching the handler.
 */
async function fuzz<P>(
  plan: fc.Arbitrary<P>,
  build: (p: P) => FuzzRequest | Promise<FuzzRequest>,
  minStatuses = 3,
  after?: (p: P, r: FuzzRequest, res: Response) => Promise<void>,
): Promise<void> {
  const statuses = new Set<number>();
  await fc.assert(
    fc.asyncProperty(plan, async (p) => {
      const r = await build(p);
      const res = await send(r);
      if (res !== undefined) statuses.add(res.status);
      fc.pre(res !== undefined);
      await expectWellFormed(r, res as Response);
      await after?.(p, r, res as Response);
    }),
    RUNS as fc.Parameters<[P]>,
  );
  expect(statuses.size, `statuses seen: ${[...statuses].join(", ")}`).toBeGreaterThanOrEqual(
    minStatuses,
  );
}

// ---- what the requests are made of ----

const knownIds = () => ["conv-1", "shared-name", "new-conv", a.tenantId, b.tenantId];

/** An Authorization header: mostly A's key, else near misses, other schemes and garbage. */
const authorization = (key: () => string) =>
  fc.oneof(
    { weight: 16, arbitrary: fc.constant(null).map(() => `Bearer ${key()}`) },
    {
      weight: 2,
      arbitrary: fc
        .constantFrom<(k: string) => string | undefined>(
          () => undefined,
          () => "",
          () => "Bearer",
          () => "Bearer ",
          (k) => `bearer ${k}`,
          (k) => `Bearer \t${k}  `,
          (k) => `Bearer ${k}x`,
          (k) => `Bearer ${k.slice(0, -1)}`,
          (k) => `Bearer ${k} ${k}`,
          (k) => k,
          () => `Basic ${btoa("a:b")}`,
          () => `Bearer ${ADMIN_TOKEN}`,
          () => `Bearer ${RUNNER_SECRET}`,
        )
        .map((f) => f(key())),
    },
    { weight: 1, arbitrary: headerValue },
    { weight: 1, arbitrary: headerValue.map((v) => `Bearer ${v}`) },
  );

/** Headers of other routes' schemes, with garbage: webhook-*, x-epicache-*, and a few more. */
const strayHeaders = fc.dictionary(
  fc.constantFrom(
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "x-epicache-signature",
    "x-epicache-timestamp",
    "x-epicache-request-id",
    "accept",
    "x-forwarded-for",
    "cf-connecting-ip",
    "origin",
  ),
  headerValue,
  { maxKeys: 3 },
);

const segment = () => pathSegment(knownIds());

/** `usual` 8 times in 9, `edge` (out of range, say) otherwise. */
const usually = <T, U>(usual: fc.Arbitrary<T>, edge: fc.Arbitrary<U>) =>
  fc.oneof({ weight: 8, arbitrary: usual }, { weight: 1, arbitrary: edge });

const message = fc.record(
  {
    id: mostly(
      usually(
        fc.oneof(fc.uuid(), fc.constantFrom("m1", "m2", "s2", "m-new"), nastyString),
        fc.constantFrom("", "i".repeat(129)),
      ),
    ),
    speaker: mostly(usually(nastyString, fc.constantFrom("", "s".repeat(201)))),
    text: mostly(usually(nastyString, fc.constantFrom("", "t".repeat(20_000), "t".repeat(20_001)))),
    timestamp: mostly(usually(nastyString, fc.constant("9".repeat(65)))),
    session: mostly(
      usually(
        fc.oneof(fc.integer(), fc.constantFrom(Number.MAX_SAFE_INTEGER, -0), nastyString),
        fc.oneof(fc.double(), fc.constantFrom(2 ** 63, 1e300)),
      ),
    ),
    extra: rarelyPresent,
  },
  { requiredKeys: ["id", "speaker", "text"] },
);

const validMessage = fc.record(
  {
    id: fc.oneof(fc.uuid(), fc.constantFrom("m1", "m2", "s2", "m-new"), nastyString),
    speaker: nastyString,
    text: fc.oneof(nastyString, fc.constant("")),
    timestamp: nastyString,
    session: fc.oneof(fc.integer(), nastyString),
  },
  { requiredKeys: ["id", "speaker", "text"] },
);
const validAppend = fc.record({
  messages: fc.uniqueArray(validMessage, { minLength: 1, maxLength: 5, selector: (m) => m.id }),
});

const appendBody = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({ messages: mostly(fc.array(message, { minLength: 0, maxLength: 6 })) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ messages: fc.array(message, { maxLength: 2 }), extra: wrongType }),
  },
  {
    weight: 1,
    arbitrary: fc.constant(null).map(() => ({
      messages: Array.from({ length: 501 }, (_, i) => ({ id: `m${i}`, speaker: "A", text: "x" })),
    })),
  },
);

const queryBody = fc.record(
  {
    question: mostly(
      usually(nastyString, fc.constantFrom("q".repeat(4000), "q".repeat(4001), "   ", "\n\t")),
    ),
    maxTokens: mostly(fc.integer({ min: -5, max: 600 })),
    stream: mostly(fc.boolean()),
    extra: rarelyPresent,
  },
  { requiredKeys: ["question"] },
);

// ---- the routes ----

describe("fuzzing every public route with tenant A's credentials", { timeout: 60_000 }, () => {
  it("POST /v1/tenants (admin token or not)", async () => {
    const tenantBody = fc.record(
      {
        name: mostly(usually(nastyString, fc.constantFrom("", "n".repeat(201)))),
        limits: mostly(
          fc.record(
            {
              maxConversations: mostly(
                usually(fc.integer({ min: 1 }), fc.oneof(fc.integer(), fc.double())),
              ),
              maxMessagesPerConversation: mostly(fc.integer({ min: -1, max: 10 })),
              requestsPerMinute: mostly(
                usually(fc.integer({ min: 1 }), fc.constantFrom(0, 1.5, 2 ** 53, 1e300)),
              ),
              plan: rarelyPresent,
            },
            { requiredKeys: [] },
          ),
        ),
        extra: rarelyPresent,
      },
      { requiredKeys: ["name"] },
    );
    await fuzz(
      fc.record({
        auth: authorization(() => ADMIN_TOKEN),
        type: contentType,
        body: body(tenantBody, fc.record({ name: nastyString })),
        stray: strayHeaders,
      }),
      (p) => ({
        method: "POST",
        path: "/v1/tenants",
        headers: { ...p.stray, authorization: p.auth, "content-type": p.type },
        body: p.body,
      }),
    );
  });

  it("POST /v1/conversations/{id}/messages (what is stored is what was sent)", async () => {
    await fuzz(
      fc.record({
        id: segment(),
        auth: authorization(() => a.apiKey),
        type: contentType,
        body: body(appendBody, validAppend),
        stray: strayHeaders,
      }),
      (p) => ({
        method: "POST",
        path: `/v1/conversations/${p.id}/messages`,
        headers: { ...p.stray, authorization: p.auth, "content-type": p.type },
        body: p.body,
      }),
      3,
      async (p, r, res) => {
        if (res.status !== 200) return;
        // Every id sent is in the transcript as sent; a fresh (uuid) message with its content as sent.
        const sent = (
          JSON.parse(r.body ?? "") as { messages: (TranscriptMessage & { id: string })[] }
        ).messages;
        // The conversation the server appended to: the path after URL normalisation ("a/../b" is "b").
        const seen = /^\/v1\/conversations\/([^/]+)\/messages$/.exec(
          new URL(`/v1/conversations/${p.id}/messages`, "http://edge").pathname,
        );
        if (!seen) throw new Error(`a 200 for a path that is not an append: ${p.id}`);
        const stored = new Map(
          (await readTranscript(env.DB, a.tenantId, decodeURIComponent(seen[1]))).map((m) => [
            m.id,
            m,
          ]),
        );
        for (const m of sent) {
          expect(stored.has(m.id), `message id ${JSON.stringify(m.id)} stored as sent`).toBe(true);
          if (/^[0-9a-f-]{36}$/.test(m.id)) expect(stored.get(m.id)).toEqual(m);
        }
      },
    );
  });

  it("GET /v1/conversations/{id}", async () => {
    await fuzz(
      fc.record({
        id: segment(),
        auth: authorization(() => a.apiKey),
        query: fc.constantFrom("", "?tenant=" + "B", "?id=conv-1&id=x"),
        stray: strayHeaders,
      }),
      (p) => ({
        method: "GET",
        path: `/v1/conversations/${p.id}${p.query}`,
        headers: { ...p.stray, authorization: p.auth },
      }),
    );
  });

  it("GET /v1/conversations/{id}/versions and /versions/{version}", async () => {
    const version = usually(fc.constantFrom(V1, V2, "v0"), pathSegment([V1, V2]));
    await fuzz(
      fc.record({
        id: segment(),
        version: fc.option(version, { nil: undefined }),
        auth: authorization(() => a.apiKey),
        stray: strayHeaders,
      }),
      (p) => ({
        method: "GET",
        path: `/v1/conversations/${p.id}/versions${p.version === undefined ? "" : `/${p.version}`}`,
        headers: { ...p.stray, authorization: p.auth },
      }),
    );
  });

  it("POST /v1/conversations/{id}/query", async () => {
    await fuzz(
      fc.record({
        id: segment(),
        auth: authorization(() => a.apiKey),
        type: contentType,
        body: body(
          queryBody,
          fc.record(
            { question: nastyString.filter((q) => q.trim() !== ""), stream: fc.boolean() },
            { requiredKeys: ["question"] },
          ),
        ),
        stray: strayHeaders,
      }),
      (p) => ({
        method: "POST",
        path: `/v1/conversations/${p.id}/query`,
        headers: { ...p.stray, authorization: p.auth, "content-type": p.type },
        body: p.body,
      }),
    );
  });

  it("POST /v1/webhooks/{tenantId}/rebuild (signed with A's secret, another, or not at all)", async () => {
    const plan = fc.record({
      tenant: fc.oneof(
        { weight: 3, arbitrary: fc.constantFrom("A", "A", "A", "B") },
        { weight: 1, arbitrary: fc.constantFrom(...HOSTILE_SEGMENTS) },
      ),
      signing: fc.constantFrom(
        "A",
        "A",
        "A",
        "random secret",
        "B's id as secret",
        "none",
        "garbage",
      ),
      id: fc.oneof(fc.constantFrom("wh-seed", "wh-1"), headerValue, fc.constant("w".repeat(257))),
      skew: fc.constantFrom(0, 0, 0, -301, 301, -1e9),
      garbage: fc.record({
        id: headerValue,
        timestamp: headerValue,
        signature: fc.oneof(
          headerValue,
          headerValue.map((v) => `v1,${v}`),
        ),
      }),
      type: contentType,
      body: body(
        fc.record(
          {
            conversationId: mostly(
              usually(fc.constantFrom("conv-1", "shared-name", "empty"), nastyString),
            ),
            extra: rarelyPresent,
          },
          { requiredKeys: ["conversationId"] },
        ),
        fc.record({ conversationId: fc.constantFrom("conv-1", "shared-name", "new-conv") }),
      ),
      auth: authorization(() => a.apiKey),
    });
    await fuzz(plan, async (p) => {
      const tenantId = p.tenant === "A" ? a.tenantId : p.tenant === "B" ? b.tenantId : p.tenant;
      const raw = p.body ?? "";
      const timestamp = Math.floor(Date.now() / 1000) + p.skew;
      const secret =
        p.signing === "A"
          ? a.webhookSecret
          : p.signing === "random secret"
            ? newWebhookSecret()
            : `whsec_${btoa(b.tenantId)}`;
      const signed =
        p.signing === "none"
          ? {}
          : p.signing === "garbage"
            ? {
                "webhook-id": p.garbage.id,
                "webhook-timestamp": p.garbage.timestamp,
                "webhook-signature": p.garbage.signature,
              }
            : await signWebhook(secret, { id: p.id, timestamp, body: raw });
      return {
        method: "POST",
        path: `/v1/webhooks/${tenantId}/rebuild`,
        headers: { authorization: p.auth, "content-type": p.type, ...signed },
        body: p.body,
      };
    });
  });

  it("POST /v1/internal/rebuild-callback (unsigned, forged, or the runner's naming another tenant's job)", async () => {
    const callbackPath = "/v1/internal/rebuild-callback";
    const job = fc.record({
      id: usually(
        fc
          .constantFrom(
            () => a.jobV2,
            () => a.jobV2,
            () => b.jobV2,
            () => "job-other",
          )
          .map((f) => f()),
        nastyString,
      ),
      tenant: usually(
        fc
          .constantFrom(
            () => a.tenantId,
            () => a.tenantId,
            () => b.tenantId,
          )
          .map((f) => f()),
        fc.constantFrom(...HOSTILE_SEGMENTS),
      ),
      conversation: fc.constantFrom("conv-1", "conv-1", "conv-1", "shared-name", "..", "conv-2"),
      version: fc.constantFrom(V1, V2, "v0", "../v1"),
      status: fc.constantFrom("queued", "running", "succeeded", "failed") as fc.Arbitrary<
        "queued" | "running" | "succeeded" | "failed"
      >,
    });
    const plan = fc.record({
      signing: fc.constantFrom(
        "runner",
        "runner",
        "runner",
        "runner",
        "runner, stale",
        "A's key",
        "A's webhook secret",
        "none",
        "garbage",
      ),
      job,
      mutate: fc.oneof(
        { weight: 2, arbitrary: fc.constant(null) },
        {
          weight: 1,
          arbitrary: fc.tuple(
            fc.constantFrom("id", "tenant", "status", "result", "percent", "createdAt", "error"),
            wrongType,
          ),
        },
      ),
      raw: body(fc.constant({})),
      useRaw: fc.constantFrom(false, false, true),
      garbage: fc.record({
        timestamp: headerValue,
        requestId: headerValue,
        signature: fc.oneof(
          headerValue,
          headerValue.map((v) => `v1=${v}`),
        ),
      }),
      type: contentType,
    });
    await fuzz(plan, async (p) => {
      // The runner signs only jobs that are its own: one naming B's job with B's id is not fuzz.
      const job = {
        ...p.job,
        id: p.job.tenant === b.tenantId && p.job.id === b.jobV2 ? "job-other" : p.job.id,
      };
      const status: Record<string, unknown> = jobStatus({
        ...job,
        centroids: [
          [1, 0],
          [0, 1],
        ],
      });
      if (p.mutate) status[p.mutate[0]] = p.mutate[1];
      const raw = p.useRaw ? (p.raw ?? "") : JSON.stringify(status);
      const secret = p.signing.startsWith("runner")
        ? RUNNER_SECRET
        : p.signing === "A's key"
          ? a.apiKey
          : a.webhookSecret;
      const timestamp = Math.floor(Date.now() / 1000) - (p.signing === "runner, stale" ? 400 : 0);
      const headers =
        p.signing === "none"
          ? {}
          : p.signing === "garbage"
            ? {
                "x-epicache-timestamp": p.garbage.timestamp,
                "x-epicache-request-id": p.garbage.requestId,
                "x-epicache-signature": p.garbage.signature,
              }
            : await signRequest(secret, {
                method: "POST",
                path: callbackPath,
                timestamp,
                requestId: crypto.randomUUID(),
                body: raw,
              });
      return {
        method: "POST",
        path: callbackPath,
        headers: { ...headers, "content-type": p.type, authorization: `Bearer ${a.apiKey}` },
        body: p.useRaw ? p.raw : raw,
      };
    });
  });

  it("GET /openapi.json and /healthz, with any method, query and headers", async () => {
    const plan = fc.record({
      path: fc.constantFrom(
        "/openapi.json",
        "/healthz",
        "/openapi.json/",
        "/healthz/",
        "/OPENAPI.JSON",
        "/healthz%00",
      ),
      method: fc.constantFrom("GET", "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"),
      query: fc.oneof(
        fc.constant(""),
        fc.string({ maxLength: 30 }).map((q) => `?${encodeURIComponent(q)}`),
        fc.constant("?" + "q=1&".repeat(500)),
      ),
      auth: authorization(() => a.apiKey),
      stray: strayHeaders,
    });
    await fuzz(
      plan,
      (p) => ({
        method: p.method,
        path: p.path + p.query,
        headers: { ...p.stray, authorization: p.auth },
      }),
      2,
    );
  });

  it("unknown routes, and known routes with the wrong method or shape", async () => {
    const paths = fc.oneof(
      fc.constantFrom(
        "/",
        "/v1",
        "/v1/",
        "/v1/conversations",
        "/v1/conversations/",
        "/v1/conversations//messages",
        "/v1//conversations/conv-1",
        "/V1/conversations/conv-1",
        "/v1/conversations/conv-1/messages/extra",
        "/v1/conversations/conv-1/",
        "/v1/internal",
        "/v1/internal/",
        "/v1/webhooks//rebuild",
        "/v1/tenants/x",
        "/v2/tenants",
        "/../v1/tenants",
        "/%2e%2e/v1/tenants",
        "/v1/conversations/conv-1/%2e%2e/%2e%2e/tenants",
        "/v1/conversations/conv-1/..%2fquery",
      ),
      fc.webPath().map((p) => (p.startsWith("/") ? p : `/${p}`)),
      fc.array(segment(), { minLength: 1, maxLength: 4 }).map((s) => `/v1/${s.join("/")}`),
    );
    const plan = fc.record({
      path: paths,
      method: fc.constantFrom("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"),
      auth: authorization(() => a.apiKey),
      type: contentType,
      body: body(fc.constant({ messages: [{ id: "m1", speaker: "A", text: "x" }] })),
      stray: strayHeaders,
    });
    await fuzz(
      plan,
      (p) => ({
        method: p.method,
        path: p.path,
        headers: { ...p.stray, authorization: p.auth, "content-type": p.type },
        body: p.method === "GET" || p.method === "HEAD" ? undefined : p.body,
      }),
      1,
    );
  });

  it("left tenant A's own transcripts whole: seqs contiguous from 1, counts right", async () => {
    const rows = await env.DB.prepare(
      `SELECT c.id, c.message_count AS count, (SELECT COUNT(*) FROM messages m WHERE m.tenant_id = c.tenant_id AND m.conversation_id = c.id) AS n,
              (SELECT COALESCE(MAX(seq), 0) FROM messages m WHERE m.tenant_id = c.tenant_id AND m.conversation_id = c.id) AS top
       FROM conversations c WHERE c.tenant_id = ?`,
    )
      .bind(a.tenantId)
      .all<{ id: string; count: number; n: number; top: number }>();
    expect(rows.results.length).toBeGreaterThanOrEqual(2);
    for (const r of rows.results) expect([r.id, r.count, r.top], r.id).toEqual([r.id, r.n, r.n]);
    expect(queued.every((job) => (job as { tenantId: string }).tenantId === a.tenantId)).toBe(true);
  });
});

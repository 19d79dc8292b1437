/**
 * Tenant isolation, route by route: tenant A, with every credential it holds (its API key, its
 * webhook secret), aims each route at tenant B's data. No row of B's is read, written, rebuilt or
 * asked about: each row of the table names what A gets back, and after every row B's rows are as
 * they were, no rebuild of B's was enqueued, and no runner request named B. A new route is one more
 * row.
 */
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { signRequest, signWebhook, type ErrorCode } from "@epicache/shared";
import { completeVersion } from "./db/versions";
import { installFakeRunners, json, jobStatus, type RunnerRequest } from "./testing/fake-runner";
import { RUNNER_SECRET, call, testEnv } from "./testing/helpers";
import { MINILM, V1, V2, seedTenant, snapshotTenant, type SeededTenant } from "./testing/seed";

const CALLBACK = "/v1/internal/rebuild-callback";
/** A conversation only B has (with an active version and a submitted rebuild, by a webhook only B sent). */
const B_ONLY = "b-private";
const B_ONLY_JOB = "job-b-private-v2";
/** A webhook-id only B has sent. */
const B_ONLY_WEBHOOK = "wh-b-private";

interface World {
  a: SeededTenant;
  b: SeededTenant;
  environment: Env;
  queued: { tenantId: string; conversationId: string; version: string }[];
  runnerLog: RunnerRequest[];
}

/** One attack: what A sends at B's data, and what A must get back. */
interface Row {
  route: string;
  attack: string;
  send: (w: World) => Promise<Response>;
  status: number;
  code?: ErrorCode;
  /** Further checks of A's answer (that it is A's own data, say). */
  check?: (res: Response, w: World) => Promise<void>;
}

const ask = (w: World, id: string) =>
  call("POST", `/v1/conversations/${id}/query`, {
    body: { question: "What did Ann say?" },
    key: w.a.apiKey,
    env: w.environment,
  });

async function webhookAs(
  w: World,
  options: { secret: string; pathTenant: string; conversationId: string; webhookId?: string },
) {
  const raw = JSON.stringify({ conversationId: options.conversationId });
  const headers = await signWebhook(options.secret, {
    id: options.webhookId ?? crypto.randomUUID(),
    timestamp: Math.floor(Date.now() / 1000),
    body: raw,
  });
  return call("POST", `/v1/webhooks/${options.pathTenant}/rebuild`, {
    rawBody: raw,
    headers,
    env: w.environment,
  });
}

async function callback(w: World, job: Record<string, unknown>, secret: string | null) {
  const raw = JSON.stringify(job);
  const headers =
    secret === null
      ? { authorization: `Bearer ${w.a.apiKey}` }
      : await signRequest(secret, {
          method: "POST",
          path: CALLBACK,
          timestamp: Math.floor(Date.now() / 1000),
          requestId: crypto.randomUUID(),
          body: raw,
        });
  return call("POST", CALLBACK, { rawBody: raw, headers, env: w.environment });
}

const bJob = (w: World, overrides: { tenant?: string; id?: string } = {}) =>
  jobStatus({
    id: overrides.id ?? B_ONLY_JOB,
    tenant: overrides.tenant ?? w.b.tenantId,
    conversation: B_ONLY,
    version: V2,
    centroids: [
      [0, 1],
      [1, 0],
    ],
  });

const ROWS: Row[] = [
  // reads
  {
    route: "GET /v1/conversations/{id}",
    attack: "B's conversation by its id",
    send: (w) =>
      call("GET", `/v1/conversations/${B_ONLY}`, { key: w.a.apiKey, env: w.environment }),
    status: 404,
    code: "not_found",
  },
  {
    route: "GET /v1/conversations/{id}",
    attack: "an id both tenants use: A sees its own",
    send: (w) => call("GET", "/v1/conversations/conv-1", { key: w.a.apiKey, env: w.environment }),
    status: 200,
    check: async (res) =>
      expect(await res.json()).toMatchObject({ messageCount: 3, activeVersion: V1 }),
  },
  {
    route: "GET /v1/conversations/{id}",
    attack: "B's tenant id as the conversation",
    send: (w) =>
      call("GET", `/v1/conversations/${w.b.tenantId}`, { key: w.a.apiKey, env: w.environment }),
    status: 404,
    code: "not_found",
  },
  {
    route: "GET /v1/conversations/{id}/versions",
    attack: "B's versions by its conversation id",
    send: (w) =>
      call("GET", `/v1/conversations/${B_ONLY}/versions`, { key: w.a.apiKey, env: w.environment }),
    status: 404,
    code: "not_found",
  },
  {
    route: "GET /v1/conversations/{id}/versions",
    attack: "an id both tenants use: A sees its own versions",
    send: (w) =>
      call("GET", "/v1/conversations/conv-1/versions", { key: w.a.apiKey, env: w.environment }),
    status: 200,
    check: async (res) =>
      expect(
        ((await res.json()) as { versions: { version: string; status: string }[] }).versions.map(
          (v) => [v.version, v.status],
        ),
      ).toEqual([
        [V2, "submitted"],
        [V1, "succeeded"],
      ]),
  },
  {
    route: "GET /v1/conversations/{id}/versions/{version}",
    attack: "B's version of B's conversation",
    send: (w) =>
      call("GET", `/v1/conversations/${B_ONLY}/versions/${V1}`, {
        key: w.a.apiKey,
        env: w.environment,
      }),
    status: 404,
    code: "not_found",
  },
  {
    route: "GET /v1/conversations/{id}/versions/{version}",
    attack: "a version both tenants' conv-1 have: A sees its own episodes",
    send: (w) =>
      call("GET", `/v1/conversations/conv-1/versions/${V1}`, {
        key: w.a.apiKey,
        env: w.environment,
      }),
    status: 200,
    check: async (res) =>
      expect(await res.json()).toMatchObject({
        version: V1,
        active: true,
        episodes: [{ id: 10 }, { id: 11 }],
      }),
  },
  // writes
  {
    route: "POST /v1/conversations/{id}/messages",
    attack: "append to B's conversation id: lands in a new conversation of A's",
    send: (w) =>
      call("POST", `/v1/conversations/${B_ONLY}/messages`, {
        body: {
          messages: [
            { id: "m1", speaker: "Mallory", text: "overwrite" },
            { id: "b9", speaker: "Mallory", text: "new" },
          ],
        },
        key: w.a.apiKey,
        env: w.environment,
      }),
    status: 200,
    check: async (res, w) => {
      expect(await res.json()).toEqual({ appended: 2, duplicates: 0, messageCount: 2 });
      const mine = await env.DB.prepare(
        "SELECT client_id, text FROM messages WHERE tenant_id = ? AND conversation_id = ? ORDER BY seq",
      )
        .bind(w.a.tenantId, B_ONLY)
        .all();
      expect(mine.results).toEqual([
        { client_id: "m1", text: "overwrite" },
        { client_id: "b9", text: "new" },
      ]);
    },
  },
  {
    route: "POST /v1/conversations/{id}/messages",
    attack: "replay B's message ids into a shared conversation id: not taken for duplicates",
    send: (w) =>
      call("POST", "/v1/conversations/shared-name/messages", {
        body: { messages: [{ id: "b-extra", speaker: "Mallory", text: "x" }] },
        key: w.a.apiKey,
        env: w.environment,
      }),
    status: 200,
    check: async (res) =>
      expect(await res.json()).toEqual({ appended: 1, duplicates: 0, messageCount: 3 }),
  },
  // questions
  {
    route: "POST /v1/conversations/{id}/query",
    attack: "ask about B's conversation",
    send: (w) => ask(w, B_ONLY),
    status: 404,
    code: "not_found",
  },
  {
    route: "POST /v1/conversations/{id}/query",
    attack: "ask about an id both use: answered from A's version, the runner told A's tenant",
    send: (w) => ask(w, "conv-1"),
    status: 200,
    check: async (res, w) => {
      expect(await res.json()).toMatchObject({ version: V1, episode: 10 });
      expect(w.runnerLog.find((r) => r.path === "/v1/generate")?.body).toMatchObject({
        tenant: w.a.tenantId,
        conversation: "conv-1",
        version: V1,
      });
    },
  },
  // rebuilds
  {
    route: "POST /v1/webhooks/{tenantId}/rebuild",
    attack: "B's webhook URL signed with A's secret",
    send: (w) =>
      webhookAs(w, { secret: w.a.webhookSecret, pathTenant: w.b.tenantId, conversationId: B_ONLY }),
    status: 401,
    code: "webhook_invalid",
  },
  {
    route: "POST /v1/webhooks/{tenantId}/rebuild",
    attack: "B's webhook URL, A's secret, B's seen webhook-id",
    send: (w) =>
      webhookAs(w, {
        secret: w.a.webhookSecret,
        pathTenant: w.b.tenantId,
        conversationId: "conv-1",
        webhookId: B_ONLY_WEBHOOK,
      }),
    status: 401,
    code: "webhook_invalid",
  },
  {
    route: "POST /v1/webhooks/{tenantId}/rebuild",
    attack: "A's webhook URL naming B's conversation",
    send: (w) =>
      webhookAs(w, { secret: w.a.webhookSecret, pathTenant: w.a.tenantId, conversationId: B_ONLY }),
    status: 404,
    code: "not_found",
  },
  {
    route: "POST /v1/webhooks/{tenantId}/rebuild",
    attack: "A's own webhook reusing B's webhook-id: a new rebuild of A's, not B's duplicate",
    // A's shared-name has no rebuild in flight, so the webhook queues one.
    send: (w) =>
      webhookAs(w, {
        secret: w.a.webhookSecret,
        pathTenant: w.a.tenantId,
        conversationId: "shared-name",
        webhookId: B_ONLY_WEBHOOK,
      }),
    status: 202,
    check: async (res, w) => {
      const body = (await res.json()) as { version: string; duplicate: boolean };
      expect(body.duplicate).toBe(false);
      expect(body.version).not.toBe(V2);
      expect(w.queued).toEqual([
        { tenantId: w.a.tenantId, conversationId: "shared-name", version: body.version },
      ]);
    },
  },
  // runner callbacks: only the runner secret signs them, and a job is bound to its tenant
  {
    route: "POST /v1/internal/rebuild-callback",
    attack: "B's job, with A's API key",
    send: (w) => callback(w, bJob(w), null),
    status: 401,
    code: "unauthorized",
  },
  {
    route: "POST /v1/internal/rebuild-callback",
    attack: "B's job, signed with A's webhook secret",
    send: (w) => callback(w, bJob(w), w.a.webhookSecret),
    status: 401,
    code: "unauthorized",
  },
  {
    route: "POST /v1/internal/rebuild-callback",
    attack: "B's job, signed with A's API key",
    send: (w) => callback(w, bJob(w), w.a.apiKey),
    status: 401,
    code: "unauthorized",
  },
  {
    route: "POST /v1/internal/rebuild-callback",
    attack: "B's job renamed to A's tenant (runner-signed)",
    send: (w) => callback(w, bJob(w, { tenant: w.a.tenantId }), RUNNER_SECRET),
    status: 404,
    code: "not_found",
  },
  {
    route: "POST /v1/internal/rebuild-callback",
    attack: "A's job id on B's version (runner-signed)",
    send: (w) => callback(w, bJob(w, { id: w.a.jobV2 }), RUNNER_SECRET),
    status: 404,
    code: "not_found",
  },
  {
    route: "POST /v1/internal/rebuild-callback",
    attack: "B's job id on A's version (runner-signed)",
    send: (w) =>
      callback(
        w,
        jobStatus({
          id: w.b.jobV2,
          tenant: w.a.tenantId,
          conversation: "conv-1",
          version: V2,
          centroids: [
            [1, 0],
            [0, 1],
          ],
        }),
        RUNNER_SECRET,
      ),
    status: 404,
    code: "not_found",
  },
];

let world: World;

beforeEach(async () => {
  const a = await seedTenant("A");
  const b = await seedTenant("B");
  // B alone has B_ONLY (active V1, V2 submitted) and a fourth message in conv-1.
  await call("POST", `/v1/conversations/${B_ONLY}/messages`, {
    body: {
      messages: [
        { id: "m1", speaker: "Bob", text: "secret" },
        { id: "m2", speaker: "Bob", text: "plans" },
      ],
    },
    key: b.apiKey,
  });
  await call("POST", "/v1/conversations/conv-1/messages", {
    body: { messages: [{ id: "b-extra", speaker: "Bob", text: "only B" }] },
    key: b.apiKey,
  });
  const now = new Date().toISOString();
  await env.DB.batch([
    env.DB.prepare(
      "INSERT INTO versions (tenant_id, conversation_id, version, status, created_at, updated_at) VALUES (?, ?, ?, 'submitted', ?, ?)",
    ).bind(b.tenantId, B_ONLY, V1, now, now),
    env.DB.prepare(
      "INSERT INTO versions (tenant_id, conversation_id, version, status, runner_url, job_id, created_at, updated_at) VALUES (?, ?, ?, 'submitted', 'http://runner-a.test', ?, ?, ?)",
    ).bind(b.tenantId, B_ONLY, V2, B_ONLY_JOB, now, now),
    env.DB.prepare(
      "INSERT INTO webhook_deliveries (tenant_id, webhook_id, conversation_id, version, received_at) VALUES (?, ?, ?, ?, ?)",
    ).bind(b.tenantId, B_ONLY_WEBHOOK, B_ONLY, V2, Math.floor(Date.now() / 1000)),
  ]);
  await completeVersion(
    env.DB,
    b.tenantId,
    B_ONLY,
    {
      version: V1,
      episodes: [{ id: 10, centroid: [1, 0] }],
      embedder: { modelId: MINILM, dimension: 2 },
      manifestKey: "k",
      contextTokens: 1,
    },
    now,
  );
  const queued: World["queued"] = [];
  const environment = testEnv({
    REBUILD_QUEUE: {
      send: async (job: World["queued"][number]) => void queued.push(job),
      sendBatch: async () => {},
    } as unknown as Queue,
  });
  const runnerLog = installFakeRunners(({ path, body }) => {
    if (path === "/v1/embed") return json({ model: MINILM, dimension: 2, vectors: [[1, 0]] });
    if (path === "/v1/generate") {
      const q = body as { tenant: string; conversation: string; version: string; episode: number };
      return json({
        answer: "A's answer",
        ...q,
        tokens: 2,
        timings: { queuedMs: 0, loadMs: 0, generateMs: 1 },
      });
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
  world = { a, b, environment, queued, runnerLog };
});

afterEach(() => vi.restoreAllMocks());

describe("tenant isolation: tenant A aims every route at tenant B's data", () => {
  it.each(ROWS.map((row) => [`${row.route}: ${row.attack}`, row] as const))(
    "%s",
    async (_name, row) => {
      const before = await snapshotTenant(world.b.tenantId);
      const res = await row.send(world);
      expect(res.status).toBe(row.status);
      if (row.code !== undefined)
        expect(((await res.clone().json()) as { error: { code: string } }).error.code).toBe(
          row.code,
        );
      await row.check?.(res, world);
      expect(await snapshotTenant(world.b.tenantId), "B's rows").toEqual(before);
      expect(
        world.queued.filter((job) => job.tenantId !== world.a.tenantId),
        "rebuilds enqueued for B",
      ).toEqual([]);
      const namingB = world.runnerLog.filter(
        (r) =>
          JSON.stringify(r).includes(world.b.tenantId) ||
          r.path.includes(world.b.jobV2) ||
          r.path.includes(B_ONLY_JOB),
      );
      expect(namingB, "runner requests naming B").toEqual([]);
    },
  );

  it("keeps concurrent appends of both tenants to the same conversation id apart, each transcript whole", async () => {
    const batch = (who: string, k: number) => ({
      messages: [0, 1, 2].map((i) => ({
        id: `c${k % 4}-${i}`,
        speaker: who,
        text: `${who} ${k % 4}.${i}`,
      })),
    });
    const sends = Array.from({ length: 8 }, (_, k) => [
      call("POST", "/v1/conversations/together/messages", {
        body: batch("A", k),
        key: world.a.apiKey,
      }),
      call("POST", "/v1/conversations/together/messages", {
        body: batch("B", k),
        key: world.b.apiKey,
      }),
    ]).flat();
    expect((await Promise.all(sends)).map((r) => r.status)).toEqual(Array(16).fill(200));
    for (const [tenant, who] of [
      [world.a, "A"],
      [world.b, "B"],
    ] as const) {
      const rows = await env.DB.prepare(
        "SELECT seq, client_id, speaker FROM messages WHERE tenant_id = ? AND conversation_id = 'together' ORDER BY seq",
      )
        .bind(tenant.tenantId)
        .all<{ seq: number; client_id: string; speaker: string }>();
      expect(rows.results.map((r) => r.seq)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
      expect(new Set(rows.results.map((r) => r.client_id)).size).toBe(12);
      expect(
        rows.results.every((r) => r.speaker === who),
        `${who}'s transcript holds only ${who}'s messages`,
      ).toBe(true);
    }
  });

  it("covers every route of the OpenAPI document", async () => {
    const doc = (await (await call("GET", "/openapi.json")).json()) as {
      paths: Record<string, Record<string, unknown>>;
    };
    const routes = Object.entries(doc.paths).flatMap(([path, methods]) =>
      Object.keys(methods).map((m) => `${m.toUpperCase()} ${path}`),
    );
    const public_ = new Set(["GET /healthz", "POST /v1/tenants"]); // no tenant data: healthz; admin only: tenants
    expect(
      routes.filter((r) => !public_.has(r) && !ROWS.some((row) => row.route === r)),
      "routes without an isolation row",
    ).toEqual([]);
  });
});

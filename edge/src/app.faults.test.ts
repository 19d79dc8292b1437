/**
 * Faults at the edge, end to end through the Worker's fetch and queue handlers: runners that refuse,
 * fail or hang at question time; webhooks delivered twice at once, or when the queue is down;
 * rebuilds completing out of order or failing; message appends retried in any pattern. (Single
 * faults of each piece are in the route and consumer tests beside them.)
 */
import { env } from "cloudflare:workers";
import fc from "fast-check";
import { afterEach, describe, expect, it, vi } from "vitest";
import { PUBLIC_MESSAGES, rendezvousKey, rendezvousOrder, signWebhook } from "@epicache/shared";
import { clearManifestCache } from "./questions";
import type { RebuildJob } from "./rebuild";
import { installFakeRunners, json, jobStatus } from "./testing/fake-runner";
import { consume, recordingQueue, runnerCallback } from "./testing/rebuild-flow";
import { RUNNERS, call, errorCode, newTenant, testEnv } from "./testing/helpers";
import { captureLogs } from "./testing/logs";
import { MINILM, V1, seedTenant } from "./testing/seed";

afterEach(() => vi.restoreAllMocks());

/** Healthy answers of a fake runner: embeddings of [1, 0], answers naming the version. */
function healthy(path: string, body: unknown): Response {
  if (path === "/v1/embed") return json({ model: MINILM, dimension: 2, vectors: [[1, 0]] });
  const q = body as { tenant: string; conversation: string; version: string; episode: number };
  return json({
    answer: `from ${q.version}`,
    ...q,
    tokens: 2,
    timings: { queuedMs: 0, loadMs: 0, generateMs: 1 },
  });
}

type Fault = "connection refused" | "5xx" | "timeout";

/**
 * Runners that fail every request except those to `healthyPaths`: by throwing (refused), by 500,
 * 502, 503 or 504 in turn, or by never answering until the edge's timeout aborts the request.
 */
function faultyRunners(fault: Fault, healthyPaths: string[]): { runner: string; path: string }[] {
  const log: { runner: string; path: string }[] = [];
  vi.spyOn(globalThis, "fetch").mockImplementation(
    async (input: RequestInfo | URL, init?: RequestInit) => {
      const request = new Request(input, init);
      const url = new URL(request.url);
      log.push({ runner: url.origin, path: url.pathname });
      if (healthyPaths.includes(url.pathname)) return healthy(url.pathname, await request.json());
      if (fault === "connection refused") throw new TypeError("Network connection lost.");
      if (fault === "5xx")
        return json(
          { error: { code: "internal", message: "down" } },
          [500, 502, 503, 504][log.length % 4],
        );
      const signal = init?.signal;
      if (!signal) throw new Error("the edge called a runner without a timeout signal");
      return new Promise<Response>((_, reject) =>
        signal.addEventListener("abort", () => reject(signal.reason)),
      );
    },
  );
  return log;
}

describe("no runner reachable at question time", () => {
  const cases = (["connection refused", "5xx", "timeout"] as const).flatMap((fault) => [
    { fault, failing: "/v1/embed", healthyPaths: [] as string[] },
    { fault, failing: "/v1/generate", healthyPaths: ["/v1/embed"] },
  ]);
  it.each(cases)(
    "$failing: every runner $fault → each tried once in order, 503 runner_unavailable, the active version kept",
    async ({ fault, failing, healthyPaths }) => {
      const t = await seedTenant("faults");
      const environment = testEnv({ RUNNER_TIMEOUT_MS: "100" });
      const log = faultyRunners(fault, healthyPaths);
      const logs = captureLogs();
      const res = await call("POST", "/v1/conversations/conv-1/query", {
        body: { question: "Where?" },
        key: t.apiKey,
        env: environment,
      });
      expect(res.status).toBe(503);
      const text = await res.text();
      const body = JSON.parse(text) as {
        error: { code: string; message: string; requestId: string };
      };
      expect(body).toEqual({
        error: {
          code: "runner_unavailable",
          message: PUBLIC_MESSAGES.runner_unavailable,
          requestId: res.headers.get("x-request-id"),
        },
      });
      // What each runner did is logged under the request id, and never answered.
      for (const runner of RUNNERS) {
        expect(text).not.toContain(new URL(runner).host);
        expect(logs.of(body.error.requestId)).toContain(runner);
      }
      const key =
        failing === "/v1/embed"
          ? rendezvousKey(t.tenantId, "conv-1")
          : rendezvousKey(t.tenantId, "conv-1", 10);
      expect(log.filter((r) => r.path === failing).map((r) => r.runner)).toEqual(
        rendezvousOrder(key, RUNNERS),
      );

      // The conversation still shows V1 active (the submitted rebuild's poll fails quietly too).
      const conversation = await call("GET", "/v1/conversations/conv-1", {
        key: t.apiKey,
        env: environment,
      });
      expect(conversation.status).toBe(200);
      expect(await conversation.json()).toMatchObject({
        activeVersion: V1,
        rebuild: { status: "submitted" },
      });

      // Once a runner answers again, the question is answered from V1.
      vi.restoreAllMocks();
      installFakeRunners(({ path, body: request }) => healthy(path, request));
      expect(
        await (
          await call("POST", "/v1/conversations/conv-1/query", {
            body: { question: "Where?" },
            key: t.apiKey,
            env: environment,
          })
        ).json(),
      ).toMatchObject({ version: V1, answer: `from ${V1}` });
    },
  );
});

async function signedWebhook(
  secret: string,
  tenantId: string,
  conversationId: string,
  webhookId: string,
) {
  const raw = JSON.stringify({ conversationId });
  const headers = await signWebhook(secret, {
    id: webhookId,
    timestamp: Math.floor(Date.now() / 1000),
    body: raw,
  });
  return (environment: Env) =>
    call("POST", `/v1/webhooks/${tenantId}/rebuild`, { rawBody: raw, headers, env: environment });
}

/** A tenant with a two-message conversation `c`. */
async function conversation() {
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
  return t;
}

/** Runners that take every rebuild as job `job-<version>` and answer questions. */
function acceptingRunners() {
  return installFakeRunners(({ path, body }) => {
    if (path === "/v1/rebuild") {
      const r = body as { tenant: string; conversation: string; version: string };
      return json(
        jobStatus({
          id: `job-${r.version}`,
          tenant: r.tenant,
          conversation: r.conversation,
          version: r.version,
          status: "queued",
        }),
        202,
      );
    }
    return healthy(path, body);
  });
}

/** A rebuild through the whole path: webhook, queue consumer, runner; returns its version. */
async function rebuild(
  t: Awaited<ReturnType<typeof conversation>>,
  environment: Env,
  jobs: RebuildJob[],
): Promise<string> {
  const res = await (
    await signedWebhook(t.webhookSecret, t.tenantId, "c", crypto.randomUUID())
  )(environment);
  expect(res.status).toBe(202);
  const { version } = (await res.json()) as { version: string };
  const job = jobs.find((j) => j.version === version);
  expect(job).toBeDefined();
  expect((await consume(job as RebuildJob, environment)).explicitAcks).toEqual(["msg-1"]);
  // Version ids order by their millisecond: the next rebuild's must be newer.
  await new Promise((r) => setTimeout(r, 2));
  return version;
}

describe("webhooks delivered more than once", () => {
  it("the same webhook-id delivered several times at once enqueues one rebuild; later copies name it", async () => {
    const t = await conversation();
    const { jobs, queue } = recordingQueue();
    const environment = testEnv({ REBUILD_QUEUE: queue });
    const deliver = await signedWebhook(t.webhookSecret, t.tenantId, "c", "msg_dup");
    const answers = await Promise.all(Array.from({ length: 4 }, () => deliver(environment)));
    const bodies = (await Promise.all(answers.map((r) => r.json()))) as {
      version: string;
      duplicate: boolean;
    }[];
    expect(answers.map((r) => r.status).sort()).toEqual([200, 200, 200, 202]);
    expect(new Set(bodies.map((b) => b.version)).size).toBe(1);
    expect(bodies.filter((b) => !b.duplicate)).toHaveLength(1);
    expect(jobs).toHaveLength(1);
    const rows = await env.DB.prepare(
      "SELECT COUNT(*) AS n FROM versions WHERE tenant_id = ? AND conversation_id = 'c'",
    )
      .bind(t.tenantId)
      .first<{ n: number }>();
    expect(rows?.n).toBe(1);

    // Redelivered after the runner took the job: the same version, as it is now.
    acceptingRunners();
    await consume(jobs[0], environment);
    const late = await deliver(environment);
    expect(late.status).toBe(200);
    expect(await late.json()).toMatchObject({
      version: bodies[0].version,
      status: "submitted",
      duplicate: true,
    });
    expect(jobs).toHaveLength(1);
  });

  it("a webhook the queue could not take fails its version and leaves the webhook-id free, so the sender's retry enqueues", async () => {
    const t = await conversation();
    const down = recordingQueue(true);
    const deliver = await signedWebhook(t.webhookSecret, t.tenantId, "c", "msg_retry");
    const first = await deliver(testEnv({ REBUILD_QUEUE: down.queue }));
    expect(first.status).toBe(500);
    expect(await errorCode(first)).toBe("internal");
    const up = recordingQueue();
    const retry = await deliver(testEnv({ REBUILD_QUEUE: up.queue }));
    expect(retry.status).toBe(202);
    expect(up.jobs).toHaveLength(1);
    const versions = await env.DB.prepare(
      "SELECT version, status FROM versions WHERE tenant_id = ? ORDER BY version",
    )
      .bind(t.tenantId)
      .all<{ version: string; status: string }>();
    expect(versions.results.map((v) => v.status)).toEqual(["failed", "queued"]);
    expect(versions.results[1].version).toBe(up.jobs[0].version);
  });
});

describe("rebuilds out of order, and failing", () => {
  it("a webhook during a rebuild waits for it: the follow-up starts and becomes active after it, and a late completion of the older one does not move the active version back", async () => {
    const t = await conversation();
    const { jobs, queue } = recordingQueue();
    const environment = testEnv({ REBUILD_QUEUE: queue });
    acceptingRunners();
    const older = await rebuild(t, environment, jobs);
    await call("POST", "/v1/conversations/c/messages", {
      body: { messages: [{ id: "m3", speaker: "Ann", text: "Later" }] },
      key: t.apiKey,
    });
    const folded = await (
      await signedWebhook(t.webhookSecret, t.tenantId, "c", "msg_during")
    )(environment);
    expect(await folded.json()).toMatchObject({ version: older, followUp: true });
    expect(jobs).toHaveLength(1);
    expect(
      await (
        await runnerCallback(
          jobStatus({
            id: `job-${older}`,
            tenant: t.tenantId,
            conversation: "c",
            version: older,
            centroids: [
              [1, 0],
              [0, 1],
            ],
          }),
          environment,
        )
      ).json(),
    ).toMatchObject({ activeVersion: older });
    expect(jobs).toHaveLength(2);
    const newer = jobs[1].version;
    expect(newer > older).toBe(true);
    expect((await consume(jobs[1], environment)).explicitAcks).toEqual(["msg-1"]);
    expect(
      await (
        await runnerCallback(
          jobStatus({
            id: `job-${newer}`,
            tenant: t.tenantId,
            conversation: "c",
            version: newer,
            centroids: [
              [1, 0],
              [0, 1],
            ],
          }),
          environment,
        )
      ).json(),
    ).toMatchObject({ activeVersion: newer });
    // The runner repeats the older job's completion (a retried callback): the newer stays active.
    expect(
      await (
        await runnerCallback(
          jobStatus({
            id: `job-${older}`,
            tenant: t.tenantId,
            conversation: "c",
            version: older,
            centroids: [
              [1, 0],
              [0, 1],
            ],
          }),
          environment,
        )
      ).json(),
    ).toEqual({ version: older, status: "succeeded", activeVersion: newer });
    expect(
      await (await call("GET", "/v1/conversations/c", { key: t.apiKey })).json(),
    ).toMatchObject({
      activeVersion: newer,
      rebuild: { version: newer, status: "succeeded", messageCount: 3 },
      followUp: false,
    });
    expect(
      await (
        await call("POST", "/v1/conversations/c/query", {
          body: { question: "Where?" },
          key: t.apiKey,
        })
      ).json(),
    ).toMatchObject({ version: newer });
    expect(jobs).toHaveLength(2);
  });

  it("a newer rebuild that no runner takes fails from the dead-letter queue; the previous version stays active, even when a late completion of it comes", async () => {
    clearManifestCache();
    const t = await conversation();
    const { jobs, queue } = recordingQueue();
    const environment = testEnv({ REBUILD_QUEUE: queue });
    acceptingRunners();
    const good = await rebuild(t, environment, jobs);
    await runnerCallback(
      jobStatus({
        id: `job-${good}`,
        tenant: t.tenantId,
        conversation: "c",
        version: good,
        centroids: [
          [1, 0],
          [0, 1],
        ],
      }),
      environment,
    );

    // The next rebuild, of a new message: every runner down, retried, then dead-lettered.
    await call("POST", "/v1/conversations/c/messages", {
      body: { messages: [{ id: "m3", speaker: "Ann", text: "Later" }] },
      key: t.apiKey,
    });
    vi.restoreAllMocks();
    installFakeRunners(({ path, body }) =>
      path === "/v1/rebuild"
        ? json({ error: { code: "internal", message: "down" } }, 503)
        : healthy(path, body),
    );
    const webhook = await (
      await signedWebhook(t.webhookSecret, t.tenantId, "c", "msg_bad")
    )(environment);
    const { version: bad } = (await webhook.json()) as { version: string };
    const job = jobs.find((j) => j.version === bad) as RebuildJob;
    expect((await consume(job, environment)).retryMessages).toHaveLength(1);
    expect((await consume(job, environment, "epicache-rebuild-dlq")).explicitAcks).toEqual([
      "msg-1",
    ]);
    expect(
      await (await call("GET", "/v1/conversations/c", { key: t.apiKey })).json(),
    ).toMatchObject({
      activeVersion: good,
      rebuild: { version: bad, status: "failed", error: { code: "runner_unavailable" } },
    });
    expect(
      await (
        await call("POST", "/v1/conversations/c/query", {
          body: { question: "Where?" },
          key: t.apiKey,
        })
      ).json(),
    ).toMatchObject({ version: good });

    // A runner that took it after all reports success late: a failed version stays failed.
    const late = await runnerCallback(
      jobStatus({
        id: "job-late",
        tenant: t.tenantId,
        conversation: "c",
        version: bad,
        centroids: [
          [0, 1],
          [1, 0],
        ],
      }),
      environment,
    );
    expect(await late.json()).toEqual({ version: bad, status: "failed", activeVersion: good });
  });
});

describe("message appends retried", () => {
  it("in any pattern (repeated, overlapping, concurrent copies) keep every message once, in first-sent order", async () => {
    const t = await newTenant("retries", { requestsPerMinute: 1_000_000 });
    let run = 0;
    const request = fc.record({
      ids: fc.uniqueArray(fc.integer({ min: 0, max: 25 }), { minLength: 1, maxLength: 6 }),
      copies: fc.integer({ min: 1, max: 3 }),
      atOnce: fc.boolean(),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(request, { minLength: 1, maxLength: 6 }), async (requests) => {
        const conversationId = `retry-${run++}`;
        const expected: number[] = [];
        let appended = 0;
        for (const r of requests) {
          const send = async () => {
            const res = await call("POST", `/v1/conversations/${conversationId}/messages`, {
              body: {
                messages: r.ids.map((i) => ({ id: `m${i}`, speaker: "S", text: `text ${i}` })),
              },
              key: t.apiKey,
            });
            expect(res.status).toBe(200);
            return (await res.json()) as {
              appended: number;
              duplicates: number;
              messageCount: number;
            };
          };
          const answers = r.atOnce
            ? await Promise.all(Array.from({ length: r.copies }, send))
            : [await send(), ...(r.copies > 1 ? [await send()] : [])];
          for (const answer of answers)
            expect(answer.appended + answer.duplicates).toBe(r.ids.length);
          appended += answers.reduce((sum, a) => sum + a.appended, 0);
          for (const i of r.ids) if (!expected.includes(i)) expected.push(i);
        }
        const rows = await env.DB.prepare(
          "SELECT seq, client_id, text FROM messages WHERE tenant_id = ? AND conversation_id = ? ORDER BY seq",
        )
          .bind(t.tenantId, conversationId)
          .all<{ seq: number; client_id: string; text: string }>();
        expect(rows.results.map((r) => r.client_id)).toEqual(expected.map((i) => `m${i}`));
        expect(rows.results.map((r) => r.seq)).toEqual(expected.map((_, k) => k + 1));
        expect(rows.results.every((r) => r.text === `text ${r.client_id.slice(1)}`)).toBe(true);
        expect(appended).toBe(expected.length);
        const count = await env.DB.prepare(
          "SELECT message_count FROM conversations WHERE tenant_id = ? AND id = ?",
        )
          .bind(t.tenantId, conversationId)
          .first<{ message_count: number }>();
        expect(count?.message_count).toBe(expected.length);
      }),
      { numRuns: 20 },
    );
  });
});

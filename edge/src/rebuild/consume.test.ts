import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { rendezvousKey, rendezvousOrder } from "@epicache/shared";
import worker from "../index";
import { RUNNERS, call, newTenant, testEnv } from "../testing/helpers";
import { installFakeRunners, json, jobStatus } from "../testing/fake-runner";
import {
  acceptingRunners,
  consume as consumeJob,
  recordingQueue,
  runnerCallback,
  sendWebhook,
} from "../testing/rebuild-flow";
import { getVersion } from "../db/versions";
import { retryDelaySeconds } from "./consume";

afterEach(() => vi.restoreAllMocks());

/** A tenant with a 3-message conversation and a queued version (as a webhook leaves it). */
async function queuedRebuild() {
  const tenant = await newTenant();
  await call("POST", "/v1/conversations/conv-1/messages", {
    body: {
      messages: [
        { id: "m1", speaker: "Ann", text: "Hi", session: 1 },
        { id: "m2", speaker: "Bob", text: "Hello", timestamp: "8 May 2023" },
        { id: "m3", speaker: "Ann", text: "Bye" },
      ],
    },
    key: tenant.apiKey,
  });
  const version = "v20260101T000000000Z-abcdef";
  const now = new Date().toISOString();
  await env.DB.prepare(
    "INSERT INTO versions (tenant_id, conversation_id, version, status, created_at, updated_at) VALUES (?, 'conv-1', ?, 'queued', ?, ?)",
  )
    .bind(tenant.tenantId, version, now, now)
    .run();
  return {
    ...tenant,
    version,
    job: { tenantId: tenant.tenantId, conversationId: "conv-1", version },
  };
}

async function consume(queue: string, body: unknown, environment: Env = testEnv(), attempts = 1) {
  const batch = createMessageBatch(queue, [{ id: "msg-1", timestamp: new Date(), attempts, body }]);
  const ctx = createExecutionContext();
  await worker.queue(batch, environment, ctx);
  return getQueueResult(batch, ctx);
}

describe("the rebuild queue consumer", () => {
  it("sends the signed transcript snapshot to the rendezvous-first runner and records the job", async () => {
    const { tenantId, version, job } = await queuedRebuild();
    const log = installFakeRunners(() =>
      json(
        jobStatus({
          id: "job-42",
          tenant: tenantId,
          conversation: "conv-1",
          version,
          status: "queued",
        }),
        202,
      ),
    );
    const result = await consume("epicache-rebuild", job);
    expect(result.explicitAcks).toEqual(["msg-1"]);
    expect(result.retryMessages).toEqual([]);
    expect(log).toHaveLength(1);
    expect(log[0]).toMatchObject({
      method: "POST",
      path: "/v1/rebuild",
      runner: rendezvousOrder(rendezvousKey(tenantId, "conv-1"), RUNNERS)[0],
    });
    expect(log[0].body).toEqual({
      tenant: tenantId,
      conversation: "conv-1",
      version,
      messages: [
        { id: "m1", speaker: "Ann", text: "Hi", session: 1 },
        { id: "m2", speaker: "Bob", text: "Hello", timestamp: "8 May 2023" },
        { id: "m3", speaker: "Ann", text: "Bye" },
      ],
      config: {},
      callbackUrl: "http://edge.test/v1/internal/rebuild-callback",
    });
    expect(await getVersion(env.DB, tenantId, "conv-1", version)).toMatchObject({
      status: "submitted",
      jobId: "job-42",
      runnerUrl: log[0].runner,
      messageCount: 3,
      stage: "queued",
    });
    // A redelivery of the same job does not submit it twice.
    expect((await consume("epicache-rebuild", job)).explicitAcks).toEqual(["msg-1"]);
    expect(log).toHaveLength(1);
  });

  it("tries the next runner when one is down or busy", async () => {
    const { tenantId, version, job } = await queuedRebuild();
    const order = rendezvousOrder(rendezvousKey(tenantId, "conv-1"), RUNNERS);
    const log = installFakeRunners(({ runner }) => {
      if (runner === order[0]) throw new TypeError("connection refused");
      if (runner === order[1]) return json({ error: { code: "queue_full", message: "busy" } }, 503);
      return json(
        jobStatus({ tenant: tenantId, conversation: "conv-1", version, status: "queued" }),
        202,
      );
    });
    expect((await consume("epicache-rebuild", job)).explicitAcks).toEqual(["msg-1"]);
    expect(log.map((r) => r.runner)).toEqual(order);
    expect(await getVersion(env.DB, tenantId, "conv-1", version)).toMatchObject({
      status: "submitted",
      runnerUrl: order[2],
    });
  });

  it("retries with backoff when no runner answers, and fails the version from the dead-letter queue", async () => {
    const { tenantId, version, job } = await queuedRebuild();
    installFakeRunners(() => json({ error: { code: "internal", message: "down" } }, 500));
    const result = await consume("epicache-rebuild", job, testEnv(), 3);
    expect(result.retryMessages.map((m: { msgId: string }) => m.msgId)).toEqual(["msg-1"]);
    expect(await getVersion(env.DB, tenantId, "conv-1", version)).toMatchObject({
      status: "queued",
    });
    expect((await consume("epicache-rebuild-dlq", job)).explicitAcks).toEqual(["msg-1"]);
    expect(await getVersion(env.DB, tenantId, "conv-1", version)).toMatchObject({
      status: "failed",
      error: { code: "runner_unavailable" },
    });
  });

  it("fails the version without retrying when the runner refuses the transcript", async () => {
    const { tenantId, version, job } = await queuedRebuild();
    installFakeRunners(() =>
      json({ error: { code: "conversation_invalid", message: "messages[2]: no text" } }, 400),
    );
    expect((await consume("epicache-rebuild", job)).explicitAcks).toEqual(["msg-1"]);
    expect(await getVersion(env.DB, tenantId, "conv-1", version)).toMatchObject({
      status: "failed",
      error: { code: "conversation_invalid" },
    });
  });

  it("backs off 10, 20, 40 … seconds, at most 5 minutes", () => {
    expect([1, 2, 3, 4, 5, 6, 9].map(retryDelaySeconds)).toEqual([10, 20, 40, 80, 160, 300, 300]);
  });

  it("acks messages that are not jobs", async () => {
    expect((await consume("epicache-rebuild", { nonsense: true })).explicitAcks).toEqual(["msg-1"]);
  });
});

describe("the consumer with an active version to continue", () => {
  const messages = [
    { id: "m1", speaker: "Ann", text: "Hi", session: 1 },
    { id: "m2", speaker: "Bob", text: "Hello" },
    { id: "m3", speaker: "Ann", text: "Bye" },
  ];
  const later = [
    { id: "m4", speaker: "Bob", text: "Wait", session: 2 },
    { id: "m5", speaker: "Ann", text: "Yes?" },
  ];

  /** A conversation of m1–m3 built once (the runner reported its last message, m3), then m4–m5 appended. */
  async function builtThenAppended(options: { lastMessageId?: string } = { lastMessageId: "m3" }) {
    const tenant = await newTenant();
    const flow = recordingQueue();
    await call("POST", "/v1/conversations/conv-1/messages", {
      body: { messages },
      key: tenant.apiKey,
    });
    const log = acceptingRunners();
    const first = (await (await sendWebhook(tenant, "conv-1", flow.environment)).json()) as {
      version: string;
    };
    await consumeJob(flow.jobs[0], flow.environment);
    await runnerCallback(
      jobStatus({
        id: `job-${first.version}`,
        tenant: tenant.tenantId,
        conversation: "conv-1",
        version: first.version,
        lastMessageId: options.lastMessageId,
      }),
      flow.environment,
    );
    await call("POST", "/v1/conversations/conv-1/messages", {
      body: { messages: later },
      key: tenant.apiKey,
    });
    const second = await sendWebhook(tenant, "conv-1", flow.environment);
    expect(second.status).toBe(202);
    const { version } = (await second.json()) as { version: string };
    return { ...tenant, ...flow, log, base: first.version, version };
  }

  it("sends only the messages after the active version's last one, with that version as the base; the conversation shows both kinds", async () => {
    const t = await builtThenAppended();
    expect(t.log[0].body).toMatchObject({ messages });
    expect(t.log[0].body).not.toHaveProperty("base");
    expect((await consumeJob(t.jobs[1], t.environment)).explicitAcks).toEqual(["msg-1"]);
    expect(t.log[1].body).toEqual({
      tenant: t.tenantId,
      conversation: "conv-1",
      version: t.version,
      base: { version: t.base, lastMessageId: "m3" },
      messages: later,
      config: {},
      callbackUrl: "http://edge.test/v1/internal/rebuild-callback",
    });
    const state = await (await call("GET", "/v1/conversations/conv-1", { key: t.apiKey })).json();
    expect(state).toMatchObject({
      activeVersion: t.base,
      active: { version: t.base, kind: "full", baseVersion: null, messageCount: 3 },
      rebuild: {
        version: t.version,
        status: "submitted",
        kind: "incremental",
        baseVersion: t.base,
        messageCount: 5,
      },
    });
    await runnerCallback(
      jobStatus({
        id: `job-${t.version}`,
        tenant: t.tenantId,
        conversation: "conv-1",
        version: t.version,
        lastMessageId: "m5",
        baseVersion: t.base,
      }),
      t.environment,
    );
    expect(
      await (await call("GET", "/v1/conversations/conv-1", { key: t.apiKey })).json(),
    ).toMatchObject({
      activeVersion: t.version,
      active: { version: t.version, kind: "incremental", baseVersion: t.base, messageCount: 5 },
      rebuild: { version: t.version, status: "succeeded", kind: "incremental" },
    });
    expect(await getVersion(env.DB, t.tenantId, "conv-1", t.version)).toMatchObject({
      lastMessageId: "m5",
    });
  });

  it("sends the whole transcript when the active version records no last message (a runner before updates)", async () => {
    const t = await builtThenAppended({});
    await consumeJob(t.jobs[1], t.environment);
    expect(t.log[1].body).not.toHaveProperty("base");
    expect((t.log[1].body as { messages: unknown[] }).messages).toEqual([...messages, ...later]);
    expect(await getVersion(env.DB, t.tenantId, "conv-1", t.version)).toMatchObject({
      status: "submitted",
      kind: "full",
      messageCount: 5,
      reason: expect.stringContaining("records no last message"),
    });
  });

  it("after base_unusable sends the same version once as a full rebuild of the whole transcript, and never again", async () => {
    const t = await builtThenAppended();
    await consumeJob(t.jobs[1], t.environment);
    const refusal = {
      code: "base_unusable",
      message: "a new speaker, Cy, changes the context's header",
    };
    const failed = jobStatus({
      id: `job-${t.version}`,
      tenant: t.tenantId,
      conversation: "conv-1",
      version: t.version,
      status: "failed",
      error: refusal,
    });
    expect(await (await runnerCallback(failed, t.environment)).json()).toMatchObject({
      version: t.version,
      status: "queued",
      activeVersion: t.base,
    });
    expect(t.jobs.map((j) => j.version)).toEqual([t.base, t.version, t.version]);
    expect(await getVersion(env.DB, t.tenantId, "conv-1", t.version)).toMatchObject({
      status: "queued",
      kind: "full",
      reason: `no usable base: ${refusal.message}`,
      error: null,
    });

    // The runner repeats the failed job's callback: old news.
    expect(await (await runnerCallback(failed, t.environment)).json()).toMatchObject({
      status: "queued",
    });
    expect(t.jobs).toHaveLength(3);

    await consumeJob(t.jobs[2], t.environment);
    expect(t.log).toHaveLength(3);
    expect(t.log[2].body).not.toHaveProperty("base");
    expect((t.log[2].body as { messages: unknown[] }).messages).toEqual([...messages, ...later]);
    expect(await getVersion(env.DB, t.tenantId, "conv-1", t.version)).toMatchObject({
      status: "submitted",
      jobId: `job-${t.version}-2`,
      kind: "full",
      messageCount: 5,
    });

    // A full rebuild that fails (even with base_unusable) fails the version: no loop.
    await runnerCallback(
      jobStatus({
        id: `job-${t.version}-2`,
        tenant: t.tenantId,
        conversation: "conv-1",
        version: t.version,
        status: "failed",
        error: refusal,
      }),
      t.environment,
    );
    expect(await getVersion(env.DB, t.tenantId, "conv-1", t.version)).toMatchObject({
      status: "failed",
      error: { code: "base_unusable" },
    });
    expect(t.jobs).toHaveLength(3);
    expect(
      await (await call("GET", "/v1/conversations/conv-1", { key: t.apiKey })).json(),
    ).toMatchObject({
      activeVersion: t.base,
      rebuild: { version: t.version, status: "failed", kind: "full" },
    });
  });

  it("falls back to a full rebuild when the runner refuses the update before its job is recorded: at once (409), or by a callback that beats the submission", async () => {
    const refusal = { code: "base_unusable", message: "version v1 was built with another budget" };
    // The runner answers the update with 409 base_unusable.
    const t = await builtThenAppended();
    vi.restoreAllMocks();
    const log = installFakeRunners(({ body }) => {
      const r = body as { version: string; base?: unknown };
      return r.base !== undefined
        ? json({ error: refusal }, 409)
        : json(
            jobStatus({
              id: "job-full",
              tenant: t.tenantId,
              conversation: "conv-1",
              version: r.version,
              status: "queued",
            }),
            202,
          );
    });
    expect((await consumeJob(t.jobs[1], t.environment)).explicitAcks).toEqual(["msg-1"]);
    expect(t.jobs.map((j) => j.version)).toEqual([t.base, t.version, t.version]);
    await consumeJob(t.jobs[2], t.environment);
    expect(log.map((r) => (r.body as { base?: unknown }).base !== undefined)).toEqual([
      true,
      false,
    ]);
    expect(await getVersion(env.DB, t.tenantId, "conv-1", t.version)).toMatchObject({
      status: "submitted",
      jobId: "job-full",
      kind: "full",
    });

    // The job fails at once, and its callback arrives before the consumer records the submission.
    const u = await builtThenAppended();
    vi.restoreAllMocks();
    let n = 0;
    installFakeRunners(async ({ body }) => {
      const r = body as { version: string; base?: unknown };
      const job = jobStatus({
        id: `job-race-${++n}`,
        tenant: u.tenantId,
        conversation: "conv-1",
        version: r.version,
        status: r.base !== undefined ? "failed" : "queued",
        error: r.base !== undefined ? refusal : null,
      });
      if (r.base !== undefined) expect((await runnerCallback(job, u.environment)).status).toBe(200);
      return json(job, 202);
    });
    await consumeJob(u.jobs[1], u.environment);
    expect(await getVersion(env.DB, u.tenantId, "conv-1", u.version)).toMatchObject({
      status: "queued",
      kind: "full",
      jobId: "job-race-1",
    });
    await consumeJob(u.jobs[2], u.environment);
    expect(await getVersion(env.DB, u.tenantId, "conv-1", u.version)).toMatchObject({
      status: "submitted",
      kind: "full",
      jobId: "job-race-2",
      messageCount: 5,
    });
  });

  it("fails a conversation stored over the transcript cap without calling a runner", async () => {
    const { tenantId, version, job } = await queuedRebuild();
    const log = installFakeRunners(() => json({}, 500));
    const small = testEnv({ MAX_TRANSCRIPT_BYTES: "100" });
    expect((await consumeJob(job, small)).explicitAcks).toEqual(["msg-1"]);
    expect(log).toEqual([]);
    expect(await getVersion(env.DB, tenantId, "conv-1", version)).toMatchObject({
      status: "failed",
      error: { code: "payload_too_large", message: expect.stringContaining("at most 100") },
    });
  });
});

import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { rendezvousKey, rendezvousOrder } from "@epicache/shared";
import worker from "../index";
import { RUNNERS, call, newTenant, testEnv } from "../testing/helpers";
import { installFakeRunners, json, jobStatus } from "../testing/fake-runner";
import { getVersion } from "../db/versions";
import { retryDelaySeconds } from "./rebuild-consumer";

afterEach(() => vi.restoreAllMocks());

/** A tenant with a 3-message conversation and a queued version (as a webhook leaves it). */
async function queuedRebuild() {
  const tenant = await newTenant();
  await call("POST", "/v1/conversations/conv-1/messages", {
    body: { messages: [{ id: "m1", speaker: "Ann", text: "Hi", session: 1 }, { id: "m2", speaker: "Bob", text: "Hello", timestamp: "8 May 2023" }, { id: "m3", speaker: "Ann", text: "Bye" }] },
    key: tenant.apiKey,
  });
  const version = "v20260101T000000000Z-abcdef";
  const now = new Date().toISOString();
  await env.DB.prepare("INSERT INTO versions (tenant_id, conversation_id, version, status, created_at, updated_at) VALUES (?, 'conv-1', ?, 'queued', ?, ?)").bind(tenant.tenantId, version, now, now).run();
  return { ...tenant, version, job: { tenantId: tenant.tenantId, conversationId: "conv-1", version } };
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
    const log = installFakeRunners(({ body }) => json(jobStatus({ id: "job-42", tenant: tenantId, conversation: "conv-1", version, status: "queued" }), 202));
    const result = await consume("epicache-rebuild", job);
    expect(result.explicitAcks).toEqual(["msg-1"]);
    expect(result.retryMessages).toEqual([]);
    expect(log).toHaveLength(1);
    expect(log[0]).toMatchObject({ method: "POST", path: "/v1/rebuild", runner: rendezvousOrder(rendezvousKey(tenantId, "conv-1"), RUNNERS)[0] });
    expect(log[0].body).toEqual({
      tenant: tenantId,
      conversation: "conv-1",
      version,
      messages: [{ id: "m1", speaker: "Ann", text: "Hi", session: 1 }, { id: "m2", speaker: "Bob", text: "Hello", timestamp: "8 May 2023" }, { id: "m3", speaker: "Ann", text: "Bye" }],
      config: {},
      callbackUrl: "http://edge.test/v1/internal/rebuild-callback",
    });
    expect(await getVersion(env.DB, tenantId, "conv-1", version)).toMatchObject({ status: "submitted", jobId: "job-42", runnerUrl: log[0].runner, messageCount: 3, stage: "queued" });
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
      return json(jobStatus({ tenant: tenantId, conversation: "conv-1", version, status: "queued" }), 202);
    });
    expect((await consume("epicache-rebuild", job)).explicitAcks).toEqual(["msg-1"]);
    expect(log.map((r) => r.runner)).toEqual(order);
    expect(await getVersion(env.DB, tenantId, "conv-1", version)).toMatchObject({ status: "submitted", runnerUrl: order[2] });
  });

  it("retries with backoff when no runner answers, and fails the version from the dead-letter queue", async () => {
    const { tenantId, version, job } = await queuedRebuild();
    installFakeRunners(() => json({ error: { code: "internal", message: "down" } }, 500));
    const result = await consume("epicache-rebuild", job, testEnv(), 3);
    expect(result.retryMessages.map((m: { msgId: string }) => m.msgId)).toEqual(["msg-1"]);
    expect(await getVersion(env.DB, tenantId, "conv-1", version)).toMatchObject({ status: "queued" });
    expect((await consume("epicache-rebuild-dlq", job)).explicitAcks).toEqual(["msg-1"]);
    expect(await getVersion(env.DB, tenantId, "conv-1", version)).toMatchObject({ status: "failed", error: { code: "runner_unavailable" } });
  });

  it("fails the version without retrying when the runner refuses the transcript", async () => {
    const { tenantId, version, job } = await queuedRebuild();
    installFakeRunners(() => json({ error: { code: "conversation_invalid", message: "messages[2]: no text" } }, 400));
    expect((await consume("epicache-rebuild", job)).explicitAcks).toEqual(["msg-1"]);
    expect(await getVersion(env.DB, tenantId, "conv-1", version)).toMatchObject({ status: "failed", error: { code: "conversation_invalid" } });
  });

  it("backs off 10, 20, 40 … seconds, at most 5 minutes", () => {
    expect([1, 2, 3, 4, 5, 6, 9].map(retryDelaySeconds)).toEqual([10, 20, 40, 80, 160, 300, 300]);
  });

  it("acks messages that are not jobs", async () => {
    expect((await consume("epicache-rebuild", { nonsense: true })).explicitAcks).toEqual(["msg-1"]);
  });
});

import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { DELIVERY_KEEP_SECONDS, findDelivery, pruneDeliveries } from "../db/deliveries";
import { getVersion } from "../db/versions";
import { installFakeRunners, json, jobStatus } from "../testing/fake-runner";
import { call, newTenant, testEnv } from "../testing/helpers";
import { acceptingRunners, consume, recordingQueue, sendWebhook } from "../testing/rebuild-flow";
import { V1, V2, seedTenant } from "../testing/seed";
import { STALE_SUBMITTED_SECONDS } from "./apply-job";
import { POLL, pollSubmitted } from "./poll-submitted";

afterEach(() => vi.restoreAllMocks());

describe("the scheduled poll of submitted rebuilds", () => {
  it("activates a quiet rebuild whose callback never came, and leaves recent ones alone", async () => {
    const t = await seedTenant("cron");
    const asked: string[] = [];
    installFakeRunners(({ path }) => {
      asked.push(path);
      return path === `/v1/jobs/${t.jobV2}`
        ? json(jobStatus({ id: t.jobV2, tenant: t.tenantId, conversation: "conv-1", version: V2 }))
        : json({ error: { code: "not_found", message: path } }, 404);
    });
    // Just submitted: not quiet yet.
    expect(await pollSubmitted(testEnv())).toEqual({ polled: 0, settled: 0 });
    expect(asked).toEqual([]);
    // A minute later the runner is asked, and the version becomes active.
    const later = new Date(Date.now() + 61_000);
    const { settled } = await pollSubmitted(testEnv(), later);
    expect(settled).toBeGreaterThanOrEqual(1);
    expect(asked).toContain(`/v1/jobs/${t.jobV2}`);
    const res = await call("GET", "/v1/conversations/conv-1", { key: t.apiKey });
    expect(await res.json()).toMatchObject({
      activeVersion: V2,
      rebuild: { version: V2, status: "succeeded" },
    });
    const row = await env.DB.prepare(
      "SELECT status FROM versions WHERE tenant_id = ? AND version = ?",
    )
      .bind(t.tenantId, V1)
      .first<{ status: string }>();
    expect(row?.status).toBe("succeeded");
  });
});

describe("rebuilds in flight that nothing moves", () => {
  it("fails a submitted rebuild whose runner has been silent for 30 minutes, and a queued one the queue never delivered within the hour; a waiting follow-up then starts", async () => {
    const tenant = await newTenant("silent");
    await call("POST", "/v1/conversations/conv-1/messages", {
      body: { messages: [{ id: "m1", speaker: "Ann", text: "Hi" }] },
      key: tenant.apiKey,
    });
    const { jobs, environment } = recordingQueue();
    acceptingRunners();
    const { version } = (await (await sendWebhook(tenant, "conv-1", environment)).json()) as {
      version: string;
    };
    await consume(jobs[0], environment);
    await call("POST", "/v1/conversations/conv-1/messages", {
      body: { messages: [{ id: "m2", speaker: "Ann", text: "Still there?" }] },
      key: tenant.apiKey,
    });
    expect(await (await sendWebhook(tenant, "conv-1", environment)).json()).toMatchObject({
      version,
      followUp: true,
    });

    // The runner cannot be reached any more.
    vi.restoreAllMocks();
    installFakeRunners(() => {
      throw new TypeError("connection refused");
    });
    await pollSubmitted(environment, new Date(Date.now() + 10 * 60_000));
    expect(await getVersion(env.DB, tenant.tenantId, "conv-1", version)).toMatchObject({
      status: "submitted",
    });
    const silent = Date.now() + (STALE_SUBMITTED_SECONDS + 60) * 1000;
    await pollSubmitted(environment, new Date(silent));
    expect(await getVersion(env.DB, tenant.tenantId, "conv-1", version)).toMatchObject({
      status: "failed",
      error: {
        code: "runner_unavailable",
        message: expect.stringContaining("no word from the runner"),
      },
    });
    expect(jobs).toHaveLength(2);

    // The follow-up's queue message is lost: an hour later it is failed, and the conversation is free again.
    const followUp = jobs[1].version;
    await pollSubmitted(environment, new Date(silent + (POLL.queuedSeconds - 60) * 1000));
    expect(await getVersion(env.DB, tenant.tenantId, "conv-1", followUp)).toMatchObject({
      status: "queued",
    });
    await pollSubmitted(environment, new Date(silent + (POLL.queuedSeconds + 60) * 1000));
    expect(await getVersion(env.DB, tenant.tenantId, "conv-1", followUp)).toMatchObject({
      status: "failed",
      error: { code: "runner_unavailable" },
    });
    expect(await (await sendWebhook(tenant, "conv-1", environment)).json()).toMatchObject({
      status: "queued",
      followUp: false,
    });
    expect(jobs).toHaveLength(3);
  });
});

describe("webhook deliveries", () => {
  it("are remembered for a week, longer than any sender retries one, then forgotten", async () => {
    const tenant = await newTenant("deliveries");
    const now = Math.floor(Date.now() / 1000);
    const insert = (id: string, at: number) =>
      env.DB.prepare(
        "INSERT INTO webhook_deliveries (tenant_id, webhook_id, conversation_id, version, received_at) VALUES (?, ?, 'conv-1', 'v', ?)",
      )
        .bind(tenant.tenantId, id, at)
        .run();
    await insert("msg_old", now - DELIVERY_KEEP_SECONDS - 60);
    await insert("msg_recent", now - DELIVERY_KEEP_SECONDS + 3600);
    expect(await pruneDeliveries(env.DB, now)).toBeGreaterThanOrEqual(1);
    expect(await findDelivery(env.DB, tenant.tenantId, "msg_old")).toBeNull();
    expect(await findDelivery(env.DB, tenant.tenantId, "msg_recent")).toEqual({
      conversationId: "conv-1",
      version: "v",
    });
  });
});

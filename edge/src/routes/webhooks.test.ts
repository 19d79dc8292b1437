import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { newWebhookSecret, signWebhook } from "@epicache/shared";
import { call, errorCode, newTenant, testEnv } from "../testing/helpers";
import { jobStatus } from "../testing/fake-runner";
import {
  acceptingRunners,
  consume,
  recordingQueue,
  runnerCallback,
  sendWebhook,
} from "../testing/rebuild-flow";

function fakeQueue() {
  const send = vi.fn(async (_body: unknown) => {});
  return { queue: { send, sendBatch: vi.fn() } as unknown as Queue, send };
}

async function webhook(
  tenantId: string,
  secret: string,
  body: unknown,
  options: {
    id?: string;
    timestamp?: number;
    environment?: Env;
    tamper?: (raw: string) => string;
  } = {},
) {
  const raw = JSON.stringify(body);
  const headers = await signWebhook(secret, {
    id: options.id ?? crypto.randomUUID(),
    timestamp: options.timestamp ?? Math.floor(Date.now() / 1000),
    body: raw,
  });
  return call("POST", `/v1/webhooks/${tenantId}/rebuild`, {
    rawBody: options.tamper ? options.tamper(raw) : raw,
    headers,
    env: options.environment,
  });
}

async function withConversation() {
  const tenant = await newTenant();
  await call("POST", "/v1/conversations/conv-1/messages", {
    body: { messages: [{ id: "m1", speaker: "Ann", text: "Hi" }] },
    key: tenant.apiKey,
  });
  return tenant;
}

afterEach(() => vi.restoreAllMocks());

describe("POST /v1/webhooks/{tenantId}/rebuild", () => {
  it("enqueues one rebuild job for a valid webhook, and records a queued version", async () => {
    const { tenantId, webhookSecret, apiKey } = await withConversation();
    const { queue, send } = fakeQueue();
    const res = await webhook(
      tenantId,
      webhookSecret,
      { conversationId: "conv-1" },
      { environment: testEnv({ REBUILD_QUEUE: queue }) },
    );
    expect(res.status).toBe(202);
    const body = (await res.json()) as { version: string; status: string; duplicate: boolean };
    expect(body).toMatchObject({ conversationId: "conv-1", status: "queued", duplicate: false });
    expect(body.version).toMatch(/^v\d{8}T\d{9}Z-[0-9a-f]{6}$/);
    expect(send).toHaveBeenCalledTimes(1);
    expect(send.mock.calls[0][0]).toEqual({
      tenantId,
      conversationId: "conv-1",
      version: body.version,
    });
    const conversation = await (
      await call("GET", "/v1/conversations/conv-1", { key: apiKey })
    ).json();
    expect(conversation).toMatchObject({
      activeVersion: null,
      rebuild: { version: body.version, status: "queued" },
    });
  });

  it("answers a replayed webhook-id with the same version and enqueues nothing more", async () => {
    const { tenantId, webhookSecret } = await withConversation();
    const { queue, send } = fakeQueue();
    const environment = testEnv({ REBUILD_QUEUE: queue });
    const first = (await (
      await webhook(
        tenantId,
        webhookSecret,
        { conversationId: "conv-1" },
        { id: "msg_1", environment },
      )
    ).json()) as { version: string };
    const again = await webhook(
      tenantId,
      webhookSecret,
      { conversationId: "conv-1" },
      { id: "msg_1", environment },
    );
    expect(again.status).toBe(200);
    expect(await again.json()).toMatchObject({ version: first.version, duplicate: true });
    expect(send).toHaveBeenCalledTimes(1);
    // A new webhook-id while that rebuild is queued waits for it: folded into its follow-up, nothing enqueued.
    const folded = await webhook(
      tenantId,
      webhookSecret,
      { conversationId: "conv-1" },
      { id: "msg_2", environment },
    );
    expect(folded.status).toBe(202);
    expect(await folded.json()).toMatchObject({
      version: first.version,
      status: "queued",
      duplicate: false,
      followUp: true,
    });
    expect(send).toHaveBeenCalledTimes(1);
  });

  it("refuses forged, tampered, stale, unsigned and other tenants' webhooks with 401 webhook_invalid", async () => {
    const { tenantId, webhookSecret } = await withConversation();
    const other = await withConversation();
    const { queue, send } = fakeQueue();
    const environment = testEnv({ REBUILD_QUEUE: queue });
    const body = { conversationId: "conv-1" };
    const refused = [
      await webhook(tenantId, newWebhookSecret(), body, { environment }),
      await webhook(tenantId, other.webhookSecret, body, { environment }),
      await webhook(tenantId, webhookSecret, body, {
        environment,
        tamper: (raw) => raw.replace("conv-1", "conv-2"),
      }),
      await webhook(tenantId, webhookSecret, body, {
        environment,
        timestamp: Math.floor(Date.now() / 1000) - 301,
      }),
      await webhook(tenantId, webhookSecret, body, {
        environment,
        timestamp: Math.floor(Date.now() / 1000) + 301,
      }),
      await webhook("t-unknown", webhookSecret, body, { environment }),
      await call("POST", `/v1/webhooks/${tenantId}/rebuild`, { body, env: environment }),
    ];
    for (const res of refused) {
      expect(res.status).toBe(401);
      expect(await errorCode(res)).toBe("webhook_invalid");
    }
    expect(send).not.toHaveBeenCalled();
    expect(
      (
        await env.DB.prepare("SELECT COUNT(*) AS n FROM versions WHERE tenant_id = ?")
          .bind(tenantId)
          .first()
      )?.n,
    ).toBe(0);
  });

  it("scopes the conversation to the webhook's tenant, and validates the body once verified", async () => {
    const a = await withConversation();
    const b = await newTenant();
    const { queue, send } = fakeQueue();
    const environment = testEnv({ REBUILD_QUEUE: queue });
    // B's signed webhook naming a conversation only A has.
    const res = await webhook(
      b.tenantId,
      b.webhookSecret,
      { conversationId: "conv-1" },
      { environment },
    );
    expect(res.status).toBe(404);
    expect(await errorCode(res)).toBe("not_found");
    const bad = await webhook(
      a.tenantId,
      a.webhookSecret,
      { conversation: "conv-1" },
      { environment },
    );
    expect(bad.status).toBe(400);
    expect(await errorCode(bad)).toBe("invalid_argument");
    expect(send).not.toHaveBeenCalled();
  });
});

describe("one rebuild at a time per conversation", () => {
  const msg = (id: string) => ({ id, speaker: id === "m2" ? "Bob" : "Ann", text: `text of ${id}` });
  async function conversationOf(ids: string[]) {
    const tenant = await newTenant("coalescing", { requestsPerMinute: 1_000_000 });
    await append(tenant.apiKey, ids);
    return tenant;
  }
  async function append(key: string, ids: string[]) {
    expect(
      (
        await call("POST", "/v1/conversations/conv-1/messages", {
          body: { messages: ids.map(msg) },
          key,
        })
      ).status,
    ).toBe(200);
  }
  const versionCount = async (tenantId: string) =>
    (
      await env.DB.prepare("SELECT COUNT(*) AS n FROM versions WHERE tenant_id = ?")
        .bind(tenantId)
        .first<{ n: number }>()
    )?.n;

  it("folds a burst of 5 webhooks during a rebuild into one follow-up, which continues it with the newest messages once it settles", async () => {
    const t = await conversationOf(["m1", "m2", "m3"]);
    const { jobs, environment } = recordingQueue();
    const log = acceptingRunners();
    const first = (await (await sendWebhook(t, "conv-1", environment)).json()) as {
      version: string;
    };
    await consume(jobs[0], environment);

    await append(t.apiKey, ["m4"]);
    const burst = await Promise.all(
      Array.from({ length: 5 }, () => sendWebhook(t, "conv-1", environment)),
    );
    expect(burst.map((r) => r.status)).toEqual([202, 202, 202, 202, 202]);
    for (const res of burst)
      expect(await res.json()).toMatchObject({
        version: first.version,
        status: "submitted",
        duplicate: false,
        followUp: true,
      });
    expect(jobs).toHaveLength(1);
    expect(await versionCount(t.tenantId)).toBe(1);
    expect(
      await (await call("GET", "/v1/conversations/conv-1", { key: t.apiKey })).json(),
    ).toMatchObject({ followUp: true, rebuild: { version: first.version, status: "submitted" } });

    // A message appended after the burst, still during the rebuild, goes into the follow-up too.
    await append(t.apiKey, ["m5"]);
    await runnerCallback(
      jobStatus({
        id: `job-${first.version}`,
        tenant: t.tenantId,
        conversation: "conv-1",
        version: first.version,
        lastMessageId: "m3",
      }),
      environment,
    );
    expect(jobs).toHaveLength(2);
    const followUp = jobs[1].version;
    expect(followUp > first.version).toBe(true);
    expect(
      await (await call("GET", "/v1/conversations/conv-1", { key: t.apiKey })).json(),
    ).toMatchObject({
      activeVersion: first.version,
      followUp: false,
      rebuild: { version: followUp, status: "queued", kind: null },
    });

    await consume(jobs[1], environment);
    const sent = log
      .filter((r) => r.path === "/v1/rebuild")
      .map(
        (r) =>
          r.body as { version: string; base?: { version: string }; messages: { id: string }[] },
      );
    expect(sent.map((r) => [r.version, r.base?.version, r.messages.map((m) => m.id)])).toEqual([
      [first.version, undefined, ["m1", "m2", "m3"]],
      [followUp, first.version, ["m4", "m5"]],
    ]);
    await runnerCallback(
      jobStatus({
        id: `job-${followUp}`,
        tenant: t.tenantId,
        conversation: "conv-1",
        version: followUp,
        lastMessageId: "m5",
        baseVersion: first.version,
      }),
      environment,
    );
    expect(jobs).toHaveLength(2);
    expect(
      await (await call("GET", "/v1/conversations/conv-1", { key: t.apiKey })).json(),
    ).toMatchObject({
      activeVersion: followUp,
      active: { kind: "incremental", baseVersion: first.version, messageCount: 5 },
      followUp: false,
      rebuild: { version: followUp, status: "succeeded", kind: "incremental" },
    });
  });

  it("starts no follow-up when the rebuild it waited for holds every message (webhooks before it read the transcript)", async () => {
    const t = await conversationOf(["m1", "m2", "m3"]);
    const { jobs, environment } = recordingQueue();
    acceptingRunners();
    const first = (await (await sendWebhook(t, "conv-1", environment)).json()) as {
      version: string;
    };
    await append(t.apiKey, ["m4"]);
    for (let i = 0; i < 5; i++)
      expect(await (await sendWebhook(t, "conv-1", environment)).json()).toMatchObject({
        version: first.version,
        status: "queued",
        followUp: true,
      });
    await consume(jobs[0], environment);
    await runnerCallback(
      jobStatus({
        id: `job-${first.version}`,
        tenant: t.tenantId,
        conversation: "conv-1",
        version: first.version,
        lastMessageId: "m4",
      }),
      environment,
    );
    expect(jobs).toHaveLength(1);
    expect(
      await (await call("GET", "/v1/conversations/conv-1", { key: t.apiKey })).json(),
    ).toMatchObject({ activeVersion: first.version, active: { messageCount: 4 }, followUp: false });
  });

  it("queues one rebuild for webhooks sent at once to an idle conversation; the others wait for it", async () => {
    const t = await conversationOf(["m1", "m2"]);
    const { jobs, environment } = recordingQueue();
    const answers = await Promise.all(
      Array.from({ length: 5 }, () => sendWebhook(t, "conv-1", environment)),
    );
    const bodies = (await Promise.all(answers.map((r) => r.json()))) as {
      version: string;
      followUp: boolean;
    }[];
    expect(jobs).toHaveLength(1);
    expect(bodies.filter((b) => !b.followUp)).toHaveLength(1);
    expect(new Set(bodies.map((b) => b.version))).toEqual(new Set([jobs[0].version]));
    expect(await versionCount(t.tenantId)).toBe(1);
  });

  it("builds nothing when the active version holds every message, and answers with it", async () => {
    const t = await conversationOf(["m1", "m2"]);
    const { jobs, environment } = recordingQueue();
    acceptingRunners();
    const first = (await (await sendWebhook(t, "conv-1", environment)).json()) as {
      version: string;
    };
    await consume(jobs[0], environment);
    await runnerCallback(
      jobStatus({
        id: `job-${first.version}`,
        tenant: t.tenantId,
        conversation: "conv-1",
        version: first.version,
        lastMessageId: "m2",
      }),
      environment,
    );
    const again = await sendWebhook(t, "conv-1", environment, "msg_nothing_new");
    expect(again.status).toBe(200);
    expect(await again.json()).toEqual({
      conversationId: "conv-1",
      version: first.version,
      status: "succeeded",
      duplicate: false,
      followUp: false,
    });
    const redelivered = await sendWebhook(t, "conv-1", environment, "msg_nothing_new");
    expect(await redelivered.json()).toMatchObject({ version: first.version, duplicate: true });
    expect(jobs).toHaveLength(1);
    // A new message makes the next webhook a rebuild again.
    await append(t.apiKey, ["m3"]);
    expect((await sendWebhook(t, "conv-1", environment)).status).toBe(202);
    expect(jobs).toHaveLength(2);
  });

  it("starts the follow-up after a rebuild that failed, from the whole transcript when nothing is active", async () => {
    const t = await conversationOf(["m1", "m2"]);
    const { jobs, environment } = recordingQueue();
    const log = acceptingRunners();
    const first = (await (await sendWebhook(t, "conv-1", environment)).json()) as {
      version: string;
    };
    await consume(jobs[0], environment);
    await append(t.apiKey, ["m3"]);
    expect(await (await sendWebhook(t, "conv-1", environment)).json()).toMatchObject({
      followUp: true,
    });
    await runnerCallback(
      jobStatus({
        id: `job-${first.version}`,
        tenant: t.tenantId,
        conversation: "conv-1",
        version: first.version,
        status: "failed",
      }),
      environment,
    );
    expect(jobs).toHaveLength(2);
    await consume(jobs[1], environment);
    expect(
      log
        .filter((r) => r.path === "/v1/rebuild")
        .map((r) => (r.body as { messages: unknown[] }).messages.length),
    ).toEqual([2, 3]);
    expect(
      await (await call("GET", "/v1/conversations/conv-1", { key: t.apiKey })).json(),
    ).toMatchObject({
      activeVersion: null,
      followUp: false,
      rebuild: {
        version: jobs[1].version,
        status: "submitted",
        kind: "full",
        reason: "first build",
        messageCount: 3,
      },
    });
  });
});

/**
 * The pieces of a rebuild as the edge's tests drive them through the Worker's handlers: a queue that
 * records what is sent to it, signed webhooks, the queue consumer fed one job, and signed runner
 * callbacks (all with the same test env, so follow-ups land in the recording queue).
 */
import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { signRequest, signWebhook } from "@epicache/shared";
import worker from "../index";
import type { RebuildJob } from "../rebuild";
import { installFakeRunners, json, jobStatus, type RunnerHandler } from "./fake-runner";
import { RUNNER_SECRET, call, testEnv } from "./helpers";

/** A queue that records the jobs sent to it (or refuses them), and a test env using it. */
export function recordingQueue(fail = false): {
  jobs: RebuildJob[];
  queue: Queue;
  environment: Env;
} {
  const jobs: RebuildJob[] = [];
  const queue = {
    send: async (job: RebuildJob) => {
      if (fail) throw new Error("queue unavailable");
      jobs.push(job);
    },
    sendBatch: async () => {},
  } as unknown as Queue;
  return { jobs, queue, environment: testEnv({ REBUILD_QUEUE: queue }) };
}

/** A signed rebuild webhook for the tenant's conversation (a fresh webhook-id unless given). */
export async function sendWebhook(
  tenant: { tenantId: string; webhookSecret: string },
  conversationId: string,
  environment: Env,
  webhookId: string = crypto.randomUUID(),
): Promise<Response> {
  const raw = JSON.stringify({ conversationId });
  const headers = await signWebhook(tenant.webhookSecret, {
    id: webhookId,
    timestamp: Math.floor(Date.now() / 1000),
    body: raw,
  });
  return call("POST", `/v1/webhooks/${tenant.tenantId}/rebuild`, {
    rawBody: raw,
    headers,
    env: environment,
  });
}

/** Runs the rebuild queue's (or its dead-letter queue's) consumer on one job. */
export async function consume(
  job: RebuildJob,
  environment: Env,
  queue = "epicache-rebuild",
  attempts = 1,
) {
  const batch = createMessageBatch(queue, [
    { id: "msg-1", timestamp: new Date(), attempts, body: job },
  ]);
  const ctx = createExecutionContext();
  await worker.queue(batch, environment, ctx);
  return getQueueResult(batch, ctx);
}

/** A runner's signed completion callback. */
export async function runnerCallback(
  job: ReturnType<typeof jobStatus>,
  environment: Env,
): Promise<Response> {
  const raw = JSON.stringify(job);
  const headers = await signRequest(RUNNER_SECRET, {
    method: "POST",
    path: "/v1/internal/rebuild-callback",
    timestamp: Math.floor(Date.now() / 1000),
    requestId: crypto.randomUUID(),
    body: raw,
  });
  return call("POST", "/v1/internal/rebuild-callback", { rawBody: raw, headers, env: environment });
}

/**
 * Runners that take every rebuild as job `job-<version>` (or `job-<version>-<n>` for its n-th
 * submission) and report the jobs they took as running; other requests go to `other`. Returns the
 * log of requests.
 */
export function acceptingRunners(
  other: RunnerHandler = ({ path }) => json({ error: { code: "not_found", message: path } }, 404),
) {
  const taken = new Map<string, { tenant: string; conversation: string; version: string }>();
  const submissions = new Map<string, number>();
  return installFakeRunners((request) => {
    const running = /^\/v1\/jobs\/(.+)$/.exec(request.path);
    const job = running ? taken.get(decodeURIComponent(running[1])) : undefined;
    if (running && job)
      return json(jobStatus({ id: decodeURIComponent(running[1]), ...job, status: "running" }));
    if (request.path !== "/v1/rebuild") return other(request);
    const r = request.body as { tenant: string; conversation: string; version: string };
    const n = (submissions.get(r.version) ?? 0) + 1;
    submissions.set(r.version, n);
    const id = n === 1 ? `job-${r.version}` : `job-${r.version}-${n}`;
    taken.set(id, { tenant: r.tenant, conversation: r.conversation, version: r.version });
    return json(
      jobStatus({
        id,
        tenant: r.tenant,
        conversation: r.conversation,
        version: r.version,
        status: "queued",
      }),
      202,
    );
  });
}

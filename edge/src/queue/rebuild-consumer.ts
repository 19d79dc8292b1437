/**
 * The rebuild queue's consumer: each job sends its conversation's transcript snapshot to a runner's
 * `POST /v1/rebuild` (signed, with the callback URL) and records the runner's job. A job whose runners
 * all fail is retried with backoff; after the queue's max_retries it goes to the dead-letter queue,
 * whose consumer marks its version failed (the previous version keeps serving).
 */
import { z } from "zod";
import { JobStatus, rendezvousKey, rendezvousOrder, type RebuildRequest } from "@epicache/shared";
import { readTranscript } from "../db/messages";
import { getVersion, markFailed, markSubmitted } from "../db/versions";
import { readConfig, type EdgeConfig } from "../env";
import { callFirstAnswering, runnerError } from "../runner/runner-client";

/** A queued rebuild: the version row it fills is already recorded as `queued`. */
export const RebuildJob = z.object({ tenantId: z.string(), conversationId: z.string(), version: z.string() });
export type RebuildJob = z.infer<typeof RebuildJob>;

/** The path runners post job completions to (signed with the runner secret). */
export const CALLBACK_PATH = "/v1/internal/rebuild-callback";

/** Seconds before retry `attempts` + 1: 10, 20, 40 … up to 5 minutes. */
export function retryDelaySeconds(attempts: number): number {
  return Math.min(300, 10 * 2 ** Math.max(0, attempts - 1));
}

/** What happened to one job. */
export type RebuildOutcome = "submitted" | "skipped" | "failed" | "retry";

/** Sends one job to a runner and records it; the outcome says whether to ack or retry. */
export async function submitRebuild(db: D1Database, config: EdgeConfig, job: RebuildJob): Promise<RebuildOutcome> {
  const record = await getVersion(db, job.tenantId, job.conversationId, job.version);
  // Delivered again after a runner took it, or no longer wanted: nothing to do.
  if (record === null || record.status !== "queued") return "skipped";
  const messages = await readTranscript(db, job.tenantId, job.conversationId);
  const now = () => new Date().toISOString();
  if (messages.length === 0) {
    await markFailed(db, job.tenantId, job.conversationId, job.version, { code: "conversation_empty", message: "the conversation has no messages" }, now());
    return "failed";
  }
  const request: RebuildRequest = {
    tenant: job.tenantId,
    conversation: job.conversationId,
    version: job.version,
    messages,
    config: {},
    callbackUrl: `${config.publicUrl}${CALLBACK_PATH}`,
  };
  let answer: { runner: string; response: Response };
  try {
    answer = await callFirstAnswering(config, rendezvousOrder(rendezvousKey(job.tenantId, job.conversationId), config.runnerUrls), { method: "POST", path: "/v1/rebuild", body: request });
  } catch (e) {
    console.warn(`rebuild ${job.tenantId}/${job.conversationId} ${job.version}: ${(e as Error).message}`);
    return "retry";
  }
  if (!answer.response.ok) {
    // The runner refused the transcript itself (4xx): retrying would not help.
    const error = await runnerError(answer.response, "the runner refused the rebuild");
    await markFailed(db, job.tenantId, job.conversationId, job.version, { code: error.code, message: error.message }, now());
    return "failed";
  }
  const status = JobStatus.safeParse(await answer.response.json().catch(() => null));
  if (!status.success) {
    await markFailed(db, job.tenantId, job.conversationId, job.version, { code: "runner_invalid", message: `the runner ${answer.runner} answered the rebuild with something that is not a job` }, now());
    return "failed";
  }
  await markSubmitted(db, job.tenantId, job.conversationId, job.version, { runnerUrl: answer.runner, job: status.data, messageCount: messages.length }, now());
  return "submitted";
}

/**
 * The Worker's `queue` handler, for the rebuild queue and its dead-letter queue.
 *
 * @example
 * ```ts
 * export default { fetch: app.fetch, queue: consumeRebuilds } satisfies ExportedHandler<Env>;
 * ```
 */
export async function consumeRebuilds(batch: MessageBatch<unknown>, env: Env, _ctx?: ExecutionContext): Promise<void> {
  const config = readConfig(env);
  const deadLetters = batch.queue.endsWith("-dlq");
  for (const message of batch.messages) {
    const job = RebuildJob.safeParse(message.body);
    if (!job.success) {
      console.error(`rebuild queue: dropping a message that is not a job: ${JSON.stringify(message.body).slice(0, 200)}`);
      message.ack();
      continue;
    }
    const { tenantId, conversationId, version } = job.data;
    try {
      if (deadLetters) {
        await markFailed(env.DB, tenantId, conversationId, version, { code: "runner_unavailable", message: "no runner took the rebuild after every retry" }, new Date().toISOString());
        message.ack();
        continue;
      }
      const outcome = await submitRebuild(env.DB, config, job.data);
      if (outcome === "retry") message.retry({ delaySeconds: retryDelaySeconds(message.attempts) });
      else message.ack();
    } catch (e) {
      console.error(`rebuild ${tenantId}/${conversationId} ${version}:`, e);
      message.retry({ delaySeconds: retryDelaySeconds(message.attempts) });
    }
  }
}

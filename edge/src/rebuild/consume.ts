/**
 * The rebuild queue's consumer: each job is submitted to a runner (submit.ts). A job whose runners
 * all fail is retried with backoff; after the queue's max_retries it goes to the dead-letter queue,
 * whose consumer marks its version failed (the previous version keeps serving).
 */
import { describeError } from "@epicache/shared";
import { readConfig } from "../env";
import { logError } from "../log";
import { RebuildJob } from "./rebuild-job";
import { failRebuild } from "./settle";
import { submitRebuild } from "./submit";

/** Seconds before retry `attempts` + 1: 10, 20, 40 … up to 5 minutes. */
export function retryDelaySeconds(attempts: number): number {
  return Math.min(300, 10 * 2 ** Math.max(0, attempts - 1));
}

/**
 * The Worker's `queue` handler, for the rebuild queue and its dead-letter queue.
 *
 * @example
 * ```ts
 * export default { fetch: app.fetch, queue: consumeRebuilds } satisfies ExportedHandler<Env>;
 * ```
 */
export async function consumeRebuilds(
  batch: MessageBatch<unknown>,
  env: Env,
  _ctx?: ExecutionContext,
): Promise<void> {
  const config = readConfig(env);
  const deadLetters = batch.queue.endsWith("-dlq");
  for (const message of batch.messages) {
    const job = RebuildJob.safeParse(message.body);
    if (!job.success) {
      logError("rebuild_message_dropped", {
        why: "not a job",
        body: JSON.stringify(message.body)?.slice(0, 200) ?? null,
      });
      message.ack();
      continue;
    }
    const { tenantId, conversationId, version } = job.data;
    try {
      if (deadLetters) {
        await failRebuild(env, tenantId, conversationId, version, {
          code: "runner_unavailable",
          message: "no runner took the rebuild after every retry",
        });
        message.ack();
        continue;
      }
      const outcome = await submitRebuild(env, config, job.data);
      if (outcome === "retry") message.retry({ delaySeconds: retryDelaySeconds(message.attempts) });
      else message.ack();
    } catch (e) {
      logError("rebuild_consumer_failed", {
        tenantId,
        conversationId,
        version,
        error: describeError(e),
      });
      message.retry({ delaySeconds: retryDelaySeconds(message.attempts) });
    }
  }
}

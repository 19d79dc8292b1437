/**
 * The scheduled poll (a cron trigger, every minute): submitted rebuilds whose runner has not been
 * heard from for a minute are asked for their job's status, so a rebuild whose completion callback
 * was lost still becomes active (or failed) without anyone reading the conversation. Rebuilds that
 * stay queued far past the queue's retries are failed: the conversation's next rebuilds wait for
 * its rebuild in flight, so none may wait forever.
 */
import { quietInFlight } from "../db/versions";
import { readConfig } from "../env";
import { refreshRebuild } from "./apply-job";
import { failRebuild } from "./settle";

/**
 * How long a submitted rebuild may be quiet before it is polled, how long a rebuild may stay queued
 * (the queue's 5 retries back off for about 5 minutes before the dead-letter queue fails it), and
 * how many of each one run handles.
 */
export const POLL = { quietSeconds: 60, queuedSeconds: 3600, perRun: 50 } as const;

export async function pollSubmitted(
  env: Env,
  now: Date = new Date(),
): Promise<{ polled: number; settled: number }> {
  const config = readConfig(env);
  const quiet = await quietInFlight(
    env.DB,
    "submitted",
    new Date(now.getTime() - POLL.quietSeconds * 1000).toISOString(),
    POLL.perRun,
  );
  let settled = 0;
  for (const { tenantId, conversationId, record } of quiet) {
    const after = await refreshRebuild(env, config, tenantId, conversationId, record, now);
    if (after.status !== "submitted") settled++;
  }
  const stuck = await quietInFlight(
    env.DB,
    "queued",
    new Date(now.getTime() - POLL.queuedSeconds * 1000).toISOString(),
    POLL.perRun,
  );
  for (const { tenantId, conversationId, record } of stuck) {
    await failRebuild(
      env,
      tenantId,
      conversationId,
      record.version,
      {
        code: "runner_unavailable",
        message: `the rebuild queue did not deliver the rebuild within ${POLL.queuedSeconds / 60} minutes`,
      },
      now,
    );
    settled++;
  }
  return { polled: quiet.length, settled };
}

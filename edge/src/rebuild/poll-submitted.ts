/**
 * The scheduled poll (a cron trigger, every minute): submitted rebuilds whose runner has not been
 * heard from for a minute are asked for their job's status, so a rebuild whose completion callback
 * was lost still becomes active (or failed) without anyone reading the conversation.
 */
import { quietSubmitted } from "../db/versions";
import { readConfig } from "../env";
import { refreshRebuild } from "./apply-job";

/** How long a submitted rebuild may be quiet before it is polled, and how many one run polls. */
export const POLL = { quietSeconds: 60, perRun: 50 } as const;

export async function pollSubmitted(env: Env, now: Date = new Date()): Promise<{ polled: number; settled: number }> {
  const config = readConfig(env);
  const quiet = await quietSubmitted(env.DB, new Date(now.getTime() - POLL.quietSeconds * 1000).toISOString(), POLL.perRun);
  let settled = 0;
  for (const { tenantId, conversationId, record } of quiet) {
    const after = await refreshRebuild(env.DB, config, tenantId, conversationId, record);
    if (after.status !== "submitted") settled++;
  }
  return { polled: quiet.length, settled };
}

/**
 * A rebuild's life at the edge, in order: a tenant's request enqueued or folded into a follow-up
 * (enqueue.ts), the queue's job consumed (consume.ts) and submitted to a runner (submit.ts), the
 * runner's job status applied from its callback or a poll (apply-job.ts, poll-submitted.ts), and the
 * version settled, starting what follows it (settle.ts). The routes (routes/webhooks.ts,
 * routes/runner-callback.ts) hold only the HTTP side; the SQL is in db/ (versions.ts, deliveries.ts).
 */
export { RebuildJob } from "./rebuild-job";
export { acceptRebuildRequest, type RebuildRequested } from "./enqueue";
export { consumeRebuilds, retryDelaySeconds } from "./consume";
export { CALLBACK_PATH, submitRebuild, type RebuildOutcome } from "./submit";
export { applyJob, refreshRebuild } from "./apply-job";
export { pollSubmitted, POLL } from "./poll-submitted";
export {
  completeRebuild,
  enqueueRebuild,
  failRebuild,
  retryAsFull,
  type RebuildEnv,
} from "./settle";

/**
 * Settling a conversation's rebuild in flight (it succeeded or failed) and starting what follows it:
 * the follow-up rebuild that webhooks asked for meanwhile (db/versions.ts starts it in the settling
 * transaction; here it is enqueued), or, for an update the runner could not make, the same version
 * again as a full rebuild.
 */
import { describeError, newVersionId } from "@epicache/shared";
import { completeVersion, fallBackToFull, markFailed, type CompletedVersion } from "../db/versions";
import { logError } from "../log";
import type { RebuildJob } from "./rebuild-job";

/** What settling needs: the database, and the queue a follow-up or fallback goes to. */
export type RebuildEnv = Pick<Env, "DB" | "REBUILD_QUEUE">;

/**
 * A version id for a follow-up of `after`: newer than it even within the same millisecond, so the
 * follow-up can become active after it.
 */
function followUpId(after: string, now: Date): string {
  const stamp = /^v(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(\d{3})Z-/.exec(after);
  const afterMs = stamp
    ? Date.UTC(+stamp[1], +stamp[2] - 1, +stamp[3], +stamp[4], +stamp[5], +stamp[6], +stamp[7])
    : Number.NEGATIVE_INFINITY;
  return newVersionId(new Date(Math.max(now.getTime(), afterMs + 1)));
}

/**
 * Sends `job` to the rebuild queue; a queue that refuses it fails the version (nothing else would
 * ever take it, and a version queued forever would hold back the conversation's next rebuilds).
 */
export async function enqueueRebuild(env: RebuildEnv, job: RebuildJob): Promise<boolean> {
  try {
    await env.REBUILD_QUEUE.send(job);
    return true;
  } catch (e) {
    logError("rebuild_not_enqueued", { ...job, error: describeError(e) });
    await markFailed(
      env.DB,
      job.tenantId,
      job.conversationId,
      job.version,
      { code: "internal", message: "the rebuild could not be enqueued" },
      new Date().toISOString(),
    );
    return false;
  }
}

/**
 * Marks the version failed and starts the conversation's follow-up rebuild if one is due. The tenant
 * reads `error` (`GET /v1/conversations/{id}`): it holds a code and a message that names nothing
 * internal (a fixed text for what a runner reported; runner-client's tenantCode for its code).
 *
 * @example
 * ```ts
 * await failRebuild(env, tenantId, conversationId, version, { code: "runner_unavailable", message: "no runner took the rebuild" });
 * ```
 */
export async function failRebuild(
  env: RebuildEnv,
  tenantId: string,
  conversationId: string,
  version: string,
  error: { code: string; message: string },
  now = new Date(),
): Promise<void> {
  const { followUp } = await markFailed(
    env.DB,
    tenantId,
    conversationId,
    version,
    error,
    now.toISOString(),
    followUpId(version, now),
  );
  if (followUp !== null) await enqueueRebuild(env, { tenantId, conversationId, version: followUp });
}

/**
 * Stores a succeeded version, activates it, and starts the conversation's follow-up rebuild if
 * one is due.
 *
 * @example
 * ```ts
 * await completeRebuild(env, tenantId, conversationId, { version, episodes, embedder, manifestKey, contextTokens, kind: "incremental", lastMessageId: "m42" });
 * ```
 */
export async function completeRebuild(
  env: RebuildEnv,
  tenantId: string,
  conversationId: string,
  manifest: CompletedVersion,
  now = new Date(),
): Promise<{ activated: boolean }> {
  const { activated, followUp } = await completeVersion(
    env.DB,
    tenantId,
    conversationId,
    manifest,
    now.toISOString(),
    followUpId(manifest.version, now),
  );
  if (followUp !== null) await enqueueRebuild(env, { tenantId, conversationId, version: followUp });
  return { activated };
}

/**
 * An update the runner refused with `base_unusable` goes back to the queue as a full rebuild of the
 * whole transcript, under the same version (the runner's reason kept as the version's). Once: the
 * full rebuild has no base to refuse, and a version already sent whole is failed instead.
 *
 * @example
 * ```ts
 * if (job.error?.code === "base_unusable") await retryAsFull(env, tenantId, conversationId, version, job.id, job.error.message);
 * ```
 */
export async function retryAsFull(
  env: RebuildEnv,
  tenantId: string,
  conversationId: string,
  version: string,
  jobId: string | null,
  why: string,
  now = new Date(),
): Promise<void> {
  if (
    await fallBackToFull(
      env.DB,
      tenantId,
      conversationId,
      version,
      jobId,
      `no usable base: ${why}`,
      now.toISOString(),
    )
  ) {
    await enqueueRebuild(env, { tenantId, conversationId, version });
  } else {
    await failRebuild(
      env,
      tenantId,
      conversationId,
      version,
      { code: "base_unusable", message: why },
      now,
    );
  }
}

/**
 * A runner's rebuild job, as its completion callback posts it or `GET /v1/jobs/{id}` shows it,
 * applied to the version it builds: progress, failure, or success (centroids, routing rule, window
 * vectors and terms stored and the version activated, atomically, never moving the active version back).
 * Settling starts the conversation's follow-up rebuild when one is due; an update the runner could
 * not make (`base_unusable`) goes back to the queue as a full rebuild.
 */
import {
  decodeWindowVectors,
  describeError,
  EpicacheError,
  JobStatus,
  isEpicacheError,
  PUBLIC_MESSAGES,
  type JobStatus as JobStatusType,
} from "@epicache/shared";
import { logError, logWarn } from "../log";
import { callRunner, parseJson, readRunnerAnswer, tenantCode } from "../runner/runner-client";
import type { EdgeConfig } from "../env";
import { getVersion, markProgress, type VersionRecord } from "../db/versions";
import { completeRebuild, failRebuild, retryAsFull, type RebuildEnv } from "./settle";

/**
 * How long a submitted rebuild may go without word from its runner (a callback, or an answer to a
 * poll, which every running or waiting job gives each minute) before it is failed: until then the
 * conversation's next rebuilds wait for it.
 */
export const STALE_SUBMITTED_SECONDS = 1800;

/**
 * Checks a succeeded job's result: one centroid per episode, each of the embedder's dimension; for
 * `window`, `vote` and `lexical` routing, window vectors of that dimension, one episode (of those
 * built) per window; for `lexical`, one string of terms per window (their form the schema checks).
 */
function checkResult(job: JobStatusType): NonNullable<JobStatusType["result"]> {
  const result = job.result;
  if (result === null)
    throw new EpicacheError("runner_invalid", `job ${job.id} succeeded without a result`);
  if (result.version !== job.version)
    throw new EpicacheError(
      "runner_invalid",
      `job ${job.id} built version ${result.version}, not ${job.version}`,
    );
  if (result.episodes.length === 0)
    throw new EpicacheError("runner_invalid", `job ${job.id} built no episodes`);
  for (const e of result.episodes) {
    if (e.centroid.length !== result.embedder.dimension || !e.centroid.every(Number.isFinite)) {
      throw new EpicacheError(
        "runner_invalid",
        `job ${job.id}: episode ${e.id}'s centroid is not ${result.embedder.dimension} finite numbers`,
      );
    }
  }
  const routing = result.routing;
  if (routing !== undefined && routing.rule !== "centroid") {
    let windows: number;
    try {
      windows = decodeWindowVectors(routing.windowVectors, result.embedder.dimension).length;
    } catch (e) {
      throw new EpicacheError("runner_invalid", `job ${job.id}: ${(e as Error).message}`);
    }
    if (windows === 0 || windows !== routing.windowEpisodes.length) {
      throw new EpicacheError(
        "runner_invalid",
        `job ${job.id}: ${windows} window vectors and ${routing.windowEpisodes.length} window episodes`,
      );
    }
    if (routing.rule === "lexical" && routing.windowTerms.length !== windows) {
      throw new EpicacheError(
        "runner_invalid",
        `job ${job.id}: ${windows} window vectors and ${routing.windowTerms.length} windows' terms`,
      );
    }
    const beyond = routing.windowEpisodes.findIndex((e) => e >= result.episodes.length);
    if (beyond >= 0)
      throw new EpicacheError(
        "runner_invalid",
        `job ${job.id}: window ${beyond} is in episode ${routing.windowEpisodes[beyond]} of ${result.episodes.length}`,
      );
  }
  return result;
}

/**
 * Applies `job` to its version of the tenant's conversation; `not_found` when the tenant has no such
 * version, or it was handed to another job. Returns the version as it is now.
 *
 * A job may finish before the consumer records that it was submitted (the version is still queued
 * then): it is applied all the same. A queued version that names this job is one whose update
 * already went back to the queue as a full rebuild: this job's word (a late or repeated callback) is
 * old news.
 *
 * @example
 * ```ts
 * const record = await applyJob(env, JobStatus.parse(body));
 * ```
 */
export async function applyJob(env: RebuildEnv, job: JobStatusType): Promise<VersionRecord> {
  const record = await getVersion(env.DB, job.tenant, job.conversation, job.version);
  if (record === null || (record.jobId !== null && record.jobId !== job.id)) {
    throw new EpicacheError(
      "not_found",
      `no rebuild of ${job.tenant}/${job.conversation} version ${job.version} with job ${job.id}`,
    );
  }
  if (record.status === "succeeded" || record.status === "failed") return record;
  if (record.status === "queued" && record.jobId === job.id) return record;
  if (job.status === "succeeded") {
    const result = checkResult(job);
    await completeRebuild(env, job.tenant, job.conversation, {
      version: job.version,
      episodes: result.episodes.map((e) => ({ id: e.id, centroid: e.centroid, bytes: e.bytes })),
      details: result.episodes.map((e) => ({
        entries: e.entries ?? null,
        layerEntries: e.layerEntries ?? null,
        representative: e.representative ?? null,
      })),
      embedder: result.embedder,
      manifestKey: result.manifestKey,
      contextTokens: result.contextTokens,
      routing: result.routing,
      kind: result.kind,
      reason: result.reason,
      baseVersion: result.baseVersion,
      lastMessageId: result.lastMessageId,
    });
  } else if (
    job.status === "failed" &&
    job.error?.code === "base_unusable" &&
    record.kind !== "full"
  ) {
    // The runner's reason (a new speaker, drift, growth, another build) is kept as the version's.
    await retryAsFull(
      env,
      job.tenant,
      job.conversation,
      job.version,
      job.id,
      job.error.message.slice(0, 500),
    );
  } else if (job.status === "failed") {
    // What the runner says went wrong is for the log; the tenant reads the code and its fixed text
    // (base_unusable keeps its reason, as above).
    const code = job.error === null ? "internal" : tenantCode(job.error.code);
    logError("rebuild_failed", {
      tenantId: job.tenant,
      conversationId: job.conversation,
      version: job.version,
      job: job.id,
      code,
      error: job.error,
    });
    const message =
      job.error?.code === "base_unusable" ? job.error.message.slice(0, 500) : PUBLIC_MESSAGES[code];
    await failRebuild(env, job.tenant, job.conversation, job.version, { code, message });
  } else {
    await markProgress(
      env.DB,
      job.tenant,
      job.conversation,
      job.version,
      job,
      new Date().toISOString(),
    );
  }
  return (await getVersion(env.DB, job.tenant, job.conversation, job.version)) ?? record;
}

/**
 * Asks the runner that took a submitted rebuild for its job's status and applies it (the polling
 * alternative to the completion callback). A runner that cannot be reached leaves the record as it
 * is, until it has been silent for {@link STALE_SUBMITTED_SECONDS}; one that no longer knows the job
 * (it restarted), or reports success with a result that cannot be used, fails the version.
 */
export async function refreshRebuild(
  env: RebuildEnv,
  config: Pick<EdgeConfig, "runnerSecret" | "runnerTimeoutMs">,
  tenantId: string,
  conversationId: string,
  record: VersionRecord,
  now = new Date(),
): Promise<VersionRecord> {
  if (record.status !== "submitted" || record.runnerUrl === null || record.jobId === null)
    return record;
  const reread = async () =>
    (await getVersion(env.DB, tenantId, conversationId, record.version)) ?? record;
  const where = {
    tenantId,
    conversationId,
    version: record.version,
    runner: record.runnerUrl,
    job: record.jobId,
  };
  const silent = async (why: string, detail: Record<string, unknown> = {}) => {
    if (now.getTime() - Date.parse(record.updatedAt) < STALE_SUBMITTED_SECONDS * 1000)
      return record;
    logError("rebuild_silent", { ...where, why, ...detail });
    await failRebuild(
      env,
      tenantId,
      conversationId,
      record.version,
      {
        code: "runner_unavailable",
        message: `no word from the runner that took the rebuild for ${STALE_SUBMITTED_SECONDS / 60} minutes; send a rebuild webhook to try again`,
      },
      now,
    );
    return reread();
  };
  let response: Response;
  try {
    response = await callRunner(
      { ...config, runnerTimeoutMs: Math.min(config.runnerTimeoutMs, 5000) },
      record.runnerUrl,
      { method: "GET", path: `/v1/jobs/${encodeURIComponent(record.jobId)}` },
    );
  } catch (e) {
    return silent("not reached", { error: describeError(e) });
  }
  if (response.status === 404) {
    logError("rebuild_lost", {
      ...where,
      answer: (await readRunnerAnswer(response)).text.slice(0, 2000),
    });
    await failRebuild(
      env,
      tenantId,
      conversationId,
      record.version,
      {
        code: "runner_unavailable",
        message:
          "the runner that took the rebuild no longer knows it (it restarted); send a rebuild webhook to try again",
      },
      now,
    );
    return reread();
  }
  if (!response.ok) {
    const answer = await readRunnerAnswer(response);
    logWarn("rebuild_poll_failed", {
      ...where,
      status: answer.status,
      answer: answer.text.slice(0, 2000),
    });
    return silent(`answered ${answer.status}`);
  }
  const text = await response.text().catch(() => "");
  const job = JobStatus.safeParse(parseJson(text));
  if (
    !job.success ||
    job.data.tenant !== tenantId ||
    job.data.conversation !== conversationId ||
    job.data.version !== record.version
  ) {
    logWarn("rebuild_poll_failed", {
      ...where,
      why: "not this rebuild's job",
      answer: text.slice(0, 2000),
    });
    return silent("answered something other than the job");
  }
  try {
    return await applyJob(env, job.data);
  } catch (e) {
    // Succeeded with a result that cannot be used (ragged centroids, say): the version can never
    // become active, so it fails and the previous one keeps serving, rather than every read of the
    // conversation failing with the same 502 while the runner remembers the job.
    if (!isEpicacheError(e) || e.code !== "runner_invalid") throw e;
    logError("rebuild_result_invalid", { ...where, why: e.message });
    await failRebuild(
      env,
      tenantId,
      conversationId,
      record.version,
      { code: e.code, message: PUBLIC_MESSAGES[e.code] },
      now,
    );
    return reread();
  }
}

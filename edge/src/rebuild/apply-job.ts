/**
 * A runner's rebuild job, as its completion callback posts it or `GET /v1/jobs/{id}` shows it,
 * applied to the version it builds: progress, failure, or success (centroids, routing rule, window
 * vectors and terms stored and the version activated, atomically, never moving the active version back).
 */
import { decodeWindowVectors, EpicacheError, JobStatus, isEpicacheError, type JobStatus as JobStatusType } from "@epicache/shared";
import { callRunner, runnerError } from "../runner/runner-client";
import type { EdgeConfig } from "../env";
import { completeVersion, getVersion, markFailed, markProgress, type VersionRecord } from "../db/versions";

/**
 * Checks a succeeded job's result: one centroid per episode, each of the embedder's dimension; for
 * `window`, `vote` and `lexical` routing, window vectors of that dimension, one episode (of those
 * built) per window; for `lexical`, one string of terms per window (their form the schema checks).
 */
function checkResult(job: JobStatusType): NonNullable<JobStatusType["result"]> {
  const result = job.result;
  if (result === null) throw new EpicacheError("runner_invalid", `job ${job.id} succeeded without a result`);
  if (result.version !== job.version) throw new EpicacheError("runner_invalid", `job ${job.id} built version ${result.version}, not ${job.version}`);
  if (result.episodes.length === 0) throw new EpicacheError("runner_invalid", `job ${job.id} built no episodes`);
  for (const e of result.episodes) {
    if (e.centroid.length !== result.embedder.dimension || !e.centroid.every(Number.isFinite)) {
      throw new EpicacheError("runner_invalid", `job ${job.id}: episode ${e.id}'s centroid is not ${result.embedder.dimension} finite numbers`);
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
      throw new EpicacheError("runner_invalid", `job ${job.id}: ${windows} window vectors and ${routing.windowEpisodes.length} window episodes`);
    }
    if (routing.rule === "lexical" && routing.windowTerms.length !== windows) {
      throw new EpicacheError("runner_invalid", `job ${job.id}: ${windows} window vectors and ${routing.windowTerms.length} windows' terms`);
    }
    const beyond = routing.windowEpisodes.findIndex((e) => e >= result.episodes.length);
    if (beyond >= 0) throw new EpicacheError("runner_invalid", `job ${job.id}: window ${beyond} is in episode ${routing.windowEpisodes[beyond]} of ${result.episodes.length}`);
  }
  return result;
}

/**
 * Applies `job` to its version of the tenant's conversation; `not_found` when the tenant has no such
 * version, or it was handed to another job. Returns the version as it is now.
 *
 * @example
 * ```ts
 * const record = await applyJob(env.DB, JobStatus.parse(body));
 * ```
 */
export async function applyJob(db: D1Database, job: JobStatusType): Promise<VersionRecord> {
  const record = await getVersion(db, job.tenant, job.conversation, job.version);
  if (record === null || (record.jobId !== null && record.jobId !== job.id)) {
    throw new EpicacheError("not_found", `no rebuild of ${job.tenant}/${job.conversation} version ${job.version} with job ${job.id}`);
  }
  const now = new Date().toISOString();
  if (record.status === "succeeded" || record.status === "failed") return record;
  if (job.status === "succeeded") {
    const result = checkResult(job);
    await completeVersion(db, job.tenant, job.conversation, {
      version: job.version,
      episodes: result.episodes.map((e) => ({ id: e.id, centroid: e.centroid })),
      embedder: result.embedder,
      manifestKey: result.manifestKey,
      contextTokens: result.contextTokens,
      routing: result.routing,
    }, now);
  } else if (job.status === "failed") {
    await markFailed(db, job.tenant, job.conversation, job.version, job.error ?? { code: "internal", message: `job ${job.id} failed` }, now);
  } else {
    await markProgress(db, job.tenant, job.conversation, job.version, job, now);
  }
  return (await getVersion(db, job.tenant, job.conversation, job.version)) ?? record;
}

/**
 * Asks the runner that took a submitted rebuild for its job's status and applies it (the polling
 * alternative to the completion callback). A runner that cannot be reached leaves the record as it
 * is; one that no longer knows the job (it restarted), or reports success with a result that cannot
 * be used, fails the version.
 */
export async function refreshRebuild(db: D1Database, config: Pick<EdgeConfig, "runnerSecret" | "runnerTimeoutMs">, tenantId: string, conversationId: string, record: VersionRecord): Promise<VersionRecord> {
  if (record.status !== "submitted" || record.runnerUrl === null || record.jobId === null) return record;
  let response: Response;
  try {
    response = await callRunner({ ...config, runnerTimeoutMs: Math.min(config.runnerTimeoutMs, 5000) }, record.runnerUrl, { method: "GET", path: `/v1/jobs/${encodeURIComponent(record.jobId)}` });
  } catch {
    return record;
  }
  if (response.status === 404) {
    await markFailed(db, tenantId, conversationId, record.version, { code: "runner_unavailable", message: `the runner ${record.runnerUrl} no longer knows job ${record.jobId}` }, new Date().toISOString());
    return (await getVersion(db, tenantId, conversationId, record.version)) ?? record;
  }
  if (!response.ok) {
    await runnerError(response, "job status");
    return record;
  }
  const job = JobStatus.safeParse(await response.json().catch(() => null));
  if (!job.success || job.data.tenant !== tenantId || job.data.conversation !== conversationId || job.data.version !== record.version) return record;
  try {
    return await applyJob(db, job.data);
  } catch (e) {
    // Succeeded with a result that cannot be used (ragged centroids, say): the version can never
    // become active, so it fails and the previous one keeps serving, rather than every read of the
    // conversation failing with the same 502 while the runner remembers the job.
    if (!isEpicacheError(e) || e.code !== "runner_invalid") throw e;
    await markFailed(db, tenantId, conversationId, record.version, { code: e.code, message: e.message }, new Date().toISOString());
    return (await getVersion(db, tenantId, conversationId, record.version)) ?? record;
  }
}

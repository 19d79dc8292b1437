/**
 * Versions of a conversation's episodes, one row per rebuild: queued (the webhook enqueued it) →
 * submitted (a runner took the job) → succeeded (the manifest's centroids are stored) | failed.
 * A succeeded version becomes the conversation's active one in the same transaction, and the
 * active version only ever moves forward (version ids sort by time).
 */
import type { JobStatus } from "@epicache/shared";

export type VersionStatus = "queued" | "submitted" | "succeeded" | "failed";

/** A version row as the routes and the consumer see it. */
export interface VersionRecord {
  version: string;
  status: VersionStatus;
  messageCount: number | null;
  runnerUrl: string | null;
  jobId: string | null;
  stage: string | null;
  percent: number | null;
  etaSeconds: number | null;
  error: { code: string; message: string } | null;
  createdAt: string;
  updatedAt: string;
}

/** What questions need of a succeeded version: its episodes' centroids and the embedder. */
export interface Manifest {
  version: string;
  /** In the runner's episode order; `id` is what /v1/generate takes. */
  episodes: { id: number; centroid: number[] }[];
  embedder: { modelId: string; dimension: number };
}

interface VersionRow {
  version: string;
  status: VersionStatus;
  message_count: number | null;
  runner_url: string | null;
  job_id: string | null;
  stage: string | null;
  percent: number | null;
  eta_seconds: number | null;
  error_code: string | null;
  error_message: string | null;
  episodes: string | null;
  embedder_model: string | null;
  embedder_dimension: number | null;
  created_at: string;
  updated_at: string;
}

function toRecord(r: VersionRow): VersionRecord {
  return {
    version: r.version,
    status: r.status,
    messageCount: r.message_count,
    runnerUrl: r.runner_url,
    jobId: r.job_id,
    stage: r.stage,
    percent: r.percent,
    etaSeconds: r.eta_seconds,
    error: r.error_code !== null ? { code: r.error_code, message: r.error_message ?? "" } : null,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

/** The statement that records a new queued version (batched with the webhook delivery). */
export function insertQueuedVersion(db: D1Database, tenantId: string, conversationId: string, version: string, now: string): D1PreparedStatement {
  return db
    .prepare("INSERT INTO versions (tenant_id, conversation_id, version, status, created_at, updated_at) VALUES (?, ?, ?, 'queued', ?, ?)")
    .bind(tenantId, conversationId, version, now, now);
}

/** One version of the tenant's conversation, or null. */
export async function getVersion(db: D1Database, tenantId: string, conversationId: string, version: string): Promise<VersionRecord | null> {
  const row = await db.prepare("SELECT * FROM versions WHERE tenant_id = ? AND conversation_id = ? AND version = ?").bind(tenantId, conversationId, version).first<VersionRow>();
  return row ? toRecord(row) : null;
}

/** The newest version of the tenant's conversation (whatever its status), or null. */
export async function latestVersion(db: D1Database, tenantId: string, conversationId: string): Promise<VersionRecord | null> {
  const row = await db.prepare("SELECT * FROM versions WHERE tenant_id = ? AND conversation_id = ? ORDER BY version DESC LIMIT 1").bind(tenantId, conversationId).first<VersionRow>();
  return row ? toRecord(row) : null;
}

/**
 * Submitted rebuilds not heard of for `quietSeconds`, oldest first, across tenants (for the
 * scheduled poll; each comes with its tenant and conversation).
 */
export async function quietSubmitted(db: D1Database, quietBefore: string, limit: number): Promise<Array<{ tenantId: string; conversationId: string; record: VersionRecord }>> {
  const { results } = await db
    .prepare("SELECT * FROM versions WHERE status = 'submitted' AND updated_at < ? ORDER BY updated_at LIMIT ?")
    .bind(quietBefore, limit)
    .all<VersionRow & { tenant_id: string; conversation_id: string }>();
  return results.map((r) => ({ tenantId: r.tenant_id, conversationId: r.conversation_id, record: toRecord(r) }));
}

/** Records that `runnerUrl` accepted the job (only for a version still queued or submitted). */
export async function markSubmitted(db: D1Database, tenantId: string, conversationId: string, version: string, submitted: { runnerUrl: string; job: JobStatus; messageCount: number }, now: string): Promise<void> {
  await db
    .prepare(
      `UPDATE versions SET status = 'submitted', runner_url = ?, job_id = ?, message_count = ?, stage = ?, percent = ?, eta_seconds = ?, updated_at = ?
       WHERE tenant_id = ? AND conversation_id = ? AND version = ? AND status IN ('queued', 'submitted')`,
    )
    .bind(submitted.runnerUrl, submitted.job.id, submitted.messageCount, submitted.job.stage, submitted.job.percent, submitted.job.etaSeconds, now, tenantId, conversationId, version)
    .run();
}

/** Updates a running job's progress. */
export async function markProgress(db: D1Database, tenantId: string, conversationId: string, version: string, job: JobStatus, now: string): Promise<void> {
  await db
    .prepare("UPDATE versions SET stage = ?, percent = ?, eta_seconds = ?, updated_at = ? WHERE tenant_id = ? AND conversation_id = ? AND version = ? AND status = 'submitted'")
    .bind(job.stage, job.percent, job.etaSeconds, now, tenantId, conversationId, version)
    .run();
}

/** Marks a version failed (never one that succeeded). */
export async function markFailed(db: D1Database, tenantId: string, conversationId: string, version: string, error: { code: string; message: string }, now: string): Promise<void> {
  await db
    .prepare(
      `UPDATE versions SET status = 'failed', error_code = ?, error_message = ?, updated_at = ?
       WHERE tenant_id = ? AND conversation_id = ? AND version = ? AND status != 'succeeded'`,
    )
    .bind(error.code, error.message.slice(0, 1000), now, tenantId, conversationId, version)
    .run();
}

/**
 * Stores a finished version's manifest and makes it active, in one transaction; the active version
 * does not move if it is already this one or a newer one. Returns whether it became active.
 */
export async function completeVersion(db: D1Database, tenantId: string, conversationId: string, manifest: Manifest & { manifestKey: string; contextTokens: number }, now: string): Promise<{ activated: boolean }> {
  const [, activate] = await db.batch([
    db
      .prepare(
        `UPDATE versions SET status = 'succeeded', episodes = ?, embedder_model = ?, embedder_dimension = ?, manifest_key = ?, context_tokens = ?,
                stage = 'done', percent = 100, eta_seconds = 0, error_code = NULL, error_message = NULL, updated_at = ?
         WHERE tenant_id = ? AND conversation_id = ? AND version = ?`,
      )
      .bind(JSON.stringify(manifest.episodes), manifest.embedder.modelId, manifest.embedder.dimension, manifest.manifestKey, manifest.contextTokens, now, tenantId, conversationId, manifest.version),
    db
      .prepare(
        `UPDATE conversations SET active_version = ?3, updated_at = ?4
         WHERE tenant_id = ?1 AND id = ?2 AND (active_version IS NULL OR active_version < ?3)
           AND EXISTS (SELECT 1 FROM versions WHERE tenant_id = ?1 AND conversation_id = ?2 AND version = ?3 AND status = 'succeeded')`,
      )
      .bind(tenantId, conversationId, manifest.version, now),
  ]);
  return { activated: activate.meta.changes === 1 };
}

/** The manifest of a succeeded version of the tenant's conversation, or null. */
export async function getManifest(db: D1Database, tenantId: string, conversationId: string, version: string): Promise<Manifest | null> {
  const row = await db
    .prepare("SELECT version, episodes, embedder_model, embedder_dimension FROM versions WHERE tenant_id = ? AND conversation_id = ? AND version = ? AND status = 'succeeded'")
    .bind(tenantId, conversationId, version)
    .first<Pick<VersionRow, "version" | "episodes" | "embedder_model" | "embedder_dimension">>();
  if (!row || row.episodes === null || row.embedder_model === null || row.embedder_dimension === null) return null;
  return { version: row.version, episodes: JSON.parse(row.episodes) as Manifest["episodes"], embedder: { modelId: row.embedder_model, dimension: row.embedder_dimension } };
}

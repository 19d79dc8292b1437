/**
 * Versions of a conversation's episodes, one row per rebuild: queued (the webhook enqueued it) →
 * submitted (a runner took the job) → succeeded (what routing needs is stored: the centroids, the
 * rule, and for `window`, `vote` and `lexical` the window vectors in `version_windows`, with each
 * window's terms for `lexical`) | failed.
 * A succeeded version becomes the conversation's active one in the same transaction, and the
 * active version only ever moves forward (version ids sort by time).
 *
 * A conversation has at most one version queued or submitted (its rebuild in flight). A webhook
 * that comes meanwhile sets the conversation's follow-up flag, and the statement that settles the
 * rebuild (succeeded or failed) starts the follow-up in the same transaction, when the transcript
 * holds messages the active version does not: however many webhooks came, one more rebuild.
 */
import {
  decodeWindowVectors,
  encodeWindowVectors,
  EpicacheError,
  type JobRouting,
  type JobStatus,
  type RoutingRule,
} from "@epicache/shared";

export type VersionStatus = "queued" | "submitted" | "succeeded" | "failed";

/** `full`: built from the whole transcript; `incremental`: a base version continued with the messages after its last. */
export type VersionKind = "full" | "incremental";

/** The statuses of a rebuild in flight, of which a conversation has at most one. */
const IN_FLIGHT = "status IN ('queued', 'submitted')";

/**
 * True (in SQL, with `c` the conversation's row) when the transcript holds messages its active
 * version does not: more messages than that version was built from (every message when there is
 * none, or when it records no count).
 */
const HAS_NEW_MESSAGES = `c.message_count > COALESCE(
  (SELECT v.message_count FROM versions v WHERE v.tenant_id = c.tenant_id AND v.conversation_id = c.id AND v.version = c.active_version), 0)`;

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
  /** Null while queued (unless a fallback asks for `full`), and for versions stored before updates. */
  kind: VersionKind | null;
  reason: string | null;
  baseVersion: string | null;
  /** The client id of its last message, as the runner reported it; null when it reported none. */
  lastMessageId: string | null;
  createdAt: string;
  updatedAt: string;
}

/** What questions need of a succeeded version: its episodes' centroids, the embedder, and how to route. */
export interface Manifest {
  version: string;
  /**
   * In the runner's episode order; `id` is what /v1/generate takes; `bytes`, the size of its cache
   * as the runner stored it (absent from versions stored before it was kept).
   */
  episodes: { id: number; centroid: number[]; bytes?: number }[];
  embedder: { modelId: string; dimension: number };
  /** The routing rule; `centroid` for versions stored before routing rules. */
  routing: RoutingRule;
  /**
   * For `window`, `vote` and `lexical`: every window's int8 vector, and its episode's position in
   * `episodes`; for `lexical` also every window's terms.
   */
  windows?: { vectors: Int8Array[]; episodes: number[]; terms?: string[][] };
}

/** What a succeeded job's result stores: the episodes, the embedder, and the routing it reported (none: centroid). */
export interface CompletedVersion {
  version: string;
  episodes: Manifest["episodes"];
  embedder: Manifest["embedder"];
  manifestKey: string;
  contextTokens: number;
  routing?: JobRouting;
  /** As the runner reports them; absent from runners before updates (a full build, never a base). */
  kind?: VersionKind;
  reason?: string;
  baseVersion?: string | null;
  lastMessageId?: string;
  /** Per episode, in `episodes`' order, what the console shows (absent from runners before they reported it). */
  details?: EpisodeDetails[];
}

/** What a version's episode holds, as the runner reported it: its entries, in all and per layer, and the start of its representative text. */
export interface EpisodeDetails {
  entries: number | null;
  layerEntries: number[] | null;
  representative: string | null;
}

/**
 * Raw bytes of window vectors per `version_windows` row (base64 makes them 4/3 as many characters):
 * rows well under D1's 2 MB limit on a string or row, and under 1 MiB.
 */
export const WINDOW_CHUNK_BYTES = 600_000;

/**
 * Characters of window terms per `version_windows` row, besides its vectors: with them a row stays
 * under about 1.4 MB. (A window holds 4 messages, so its terms are under 80,000 characters at the
 * default MAX_MESSAGE_CHARS of 20,000; a chunk holds at least one window whatever its size.)
 */
export const WINDOW_TERMS_CHUNK_CHARS = 600_000;

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
  routing_rule: RoutingRule["rule"] | null;
  routing_k: number | null;
  kind: VersionKind | null;
  reason: string | null;
  base_version: string | null;
  last_message_id: string | null;
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
    kind: r.kind,
    reason: r.reason,
    baseVersion: r.base_version,
    lastMessageId: r.last_message_id,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

/**
 * The statements of a rebuild webhook, in one transaction with the delivery's record: a new queued
 * `version` when the conversation has no rebuild in flight and holds messages its active version
 * does not; else the follow-up flag when a rebuild is in flight (other than `version`). Whether
 * `version` was queued shows in the first statement's changes.
 */
export function requestRebuild(
  db: D1Database,
  tenantId: string,
  conversationId: string,
  version: string,
  now: string,
): D1PreparedStatement[] {
  return [
    db
      .prepare(
        `INSERT INTO versions (tenant_id, conversation_id, version, status, created_at, updated_at)
         SELECT ?1, ?2, ?3, 'queued', ?4, ?4 FROM conversations c
         WHERE c.tenant_id = ?1 AND c.id = ?2 AND ${HAS_NEW_MESSAGES}
           AND NOT EXISTS (SELECT 1 FROM versions WHERE tenant_id = ?1 AND conversation_id = ?2 AND ${IN_FLIGHT})`,
      )
      .bind(tenantId, conversationId, version, now),
    db
      .prepare(
        `UPDATE conversations SET follow_up = 1 WHERE tenant_id = ?1 AND id = ?2
           AND EXISTS (SELECT 1 FROM versions WHERE tenant_id = ?1 AND conversation_id = ?2 AND ${IN_FLIGHT} AND version != ?3)`,
      )
      .bind(tenantId, conversationId, version),
  ];
}

/**
 * The version a webhook names, for its delivery's record: the rebuild in flight (the one it queued,
 * or the one it waits for), else the active version (nothing new to build), else `version`.
 */
export const WEBHOOK_VERSION_SQL = `COALESCE(
  (SELECT version FROM versions WHERE tenant_id = ?1 AND conversation_id = ?2 AND ${IN_FLIGHT} ORDER BY version DESC LIMIT 1),
  (SELECT active_version FROM conversations WHERE tenant_id = ?1 AND id = ?2), ?3)`;

/**
 * The statements that start the conversation's follow-up rebuild as `followUp` (queued), batched
 * after the statement that settles its rebuild in flight: only when a webhook asked for one, nothing
 * is in flight any more, and there are messages the active version does not hold. The flag is
 * cleared unless another rebuild is still in flight (rows from before coalescing). Whether it
 * started shows in the first statement's changes.
 */
function followUpStatements(
  db: D1Database,
  tenantId: string,
  conversationId: string,
  followUp: string,
  now: string,
): D1PreparedStatement[] {
  return [
    db
      .prepare(
        `INSERT INTO versions (tenant_id, conversation_id, version, status, created_at, updated_at)
         SELECT ?1, ?2, ?3, 'queued', ?4, ?4 FROM conversations c
         WHERE c.tenant_id = ?1 AND c.id = ?2 AND c.follow_up = 1 AND ${HAS_NEW_MESSAGES}
           AND NOT EXISTS (SELECT 1 FROM versions WHERE tenant_id = ?1 AND conversation_id = ?2 AND ${IN_FLIGHT})`,
      )
      .bind(tenantId, conversationId, followUp, now),
    db
      .prepare(
        `UPDATE conversations SET follow_up = 0 WHERE tenant_id = ?1 AND id = ?2 AND follow_up = 1
           AND NOT EXISTS (SELECT 1 FROM versions WHERE tenant_id = ?1 AND conversation_id = ?2 AND ${IN_FLIGHT} AND version != ?3)`,
      )
      .bind(tenantId, conversationId, followUp),
  ];
}

/** The active version as an update's base, when its runner reported its last message; else null. */
export async function activeBase(
  db: D1Database,
  tenantId: string,
  conversationId: string,
): Promise<{ version: string; lastMessageId: string; messageCount: number } | null> {
  const row = await db
    .prepare(
      `SELECT v.version, v.last_message_id, v.message_count FROM conversations c
       JOIN versions v ON v.tenant_id = c.tenant_id AND v.conversation_id = c.id AND v.version = c.active_version
       WHERE c.tenant_id = ? AND c.id = ? AND v.last_message_id IS NOT NULL AND v.message_count IS NOT NULL`,
    )
    .bind(tenantId, conversationId)
    .first<{ version: string; last_message_id: string; message_count: number }>();
  return row
    ? { version: row.version, lastMessageId: row.last_message_id, messageCount: row.message_count }
    : null;
}

/** One version of the tenant's conversation, or null. */
export async function getVersion(
  db: D1Database,
  tenantId: string,
  conversationId: string,
  version: string,
): Promise<VersionRecord | null> {
  const row = await db
    .prepare("SELECT * FROM versions WHERE tenant_id = ? AND conversation_id = ? AND version = ?")
    .bind(tenantId, conversationId, version)
    .first<VersionRow>();
  return row ? toRecord(row) : null;
}

/** The newest version of the tenant's conversation (whatever its status), or null. */
export async function latestVersion(
  db: D1Database,
  tenantId: string,
  conversationId: string,
): Promise<VersionRecord | null> {
  const row = await db
    .prepare(
      "SELECT * FROM versions WHERE tenant_id = ? AND conversation_id = ? ORDER BY version DESC LIMIT 1",
    )
    .bind(tenantId, conversationId)
    .first<VersionRow>();
  return row ? toRecord(row) : null;
}

/** What the consumer sent: the runner's job, how many messages the version holds, and how it is built. */
export interface Submission {
  runnerUrl: string;
  job: JobStatus;
  /** Every message the version holds (the base's and the new ones for an update). */
  messageCount: number;
  kind: VersionKind;
  reason: string;
  baseVersion: string | null;
}

/**
 * Records that `runnerUrl` accepted the job (only for a version still queued or submitted, and not
 * for a job that already failed over to a full rebuild: {@link fallBackToFull} keeps its id).
 */
export async function markSubmitted(
  db: D1Database,
  tenantId: string,
  conversationId: string,
  version: string,
  submitted: Submission,
  now: string,
): Promise<void> {
  await db
    .prepare(
      `UPDATE versions SET status = 'submitted', runner_url = ?4, job_id = ?5, message_count = ?6, stage = ?7, percent = ?8, eta_seconds = ?9,
              kind = ?10, reason = ?11, base_version = ?12, updated_at = ?13
       WHERE tenant_id = ?1 AND conversation_id = ?2 AND version = ?3 AND status IN ('queued', 'submitted') AND (job_id IS NULL OR job_id != ?5)`,
    )
    .bind(
      tenantId,
      conversationId,
      version,
      submitted.runnerUrl,
      submitted.job.id,
      submitted.messageCount,
      submitted.job.stage,
      submitted.job.percent,
      submitted.job.etaSeconds,
      submitted.kind,
      submitted.reason.slice(0, 1000),
      submitted.baseVersion,
      now,
    )
    .run();
}

/**
 * Puts an update whose runner answered `base_unusable` back in the queue as a full rebuild of the
 * same version (kind `full`, the runner's reason kept): once, since a full rebuild has no base to
 * refuse. The failed job's id stays on the row, so that its late callbacks and a late record of its
 * submission are recognised (null: the runner refused the request itself, no job). Returns whether
 * the row changed (the caller then enqueues it).
 */
export async function fallBackToFull(
  db: D1Database,
  tenantId: string,
  conversationId: string,
  version: string,
  jobId: string | null,
  reason: string,
  now: string,
): Promise<boolean> {
  const result = await db
    .prepare(
      `UPDATE versions SET status = 'queued', kind = 'full', reason = ?5, base_version = NULL, job_id = ?4, runner_url = NULL,
              stage = NULL, percent = NULL, eta_seconds = NULL, error_code = NULL, error_message = NULL, updated_at = ?6
       WHERE tenant_id = ?1 AND conversation_id = ?2 AND version = ?3 AND status IN ('queued', 'submitted') AND kind IS NOT 'full'
         AND (job_id IS NULL OR job_id IS ?4)`,
    )
    .bind(tenantId, conversationId, version, jobId, reason.slice(0, 1000), now)
    .run();
  return result.meta.changes === 1;
}

/** Updates a running job's progress. */
export async function markProgress(
  db: D1Database,
  tenantId: string,
  conversationId: string,
  version: string,
  job: JobStatus,
  now: string,
): Promise<void> {
  await db
    .prepare(
      "UPDATE versions SET stage = ?, percent = ?, eta_seconds = ?, updated_at = ? WHERE tenant_id = ? AND conversation_id = ? AND version = ? AND status = 'submitted'",
    )
    .bind(job.stage, job.percent, job.etaSeconds, now, tenantId, conversationId, version)
    .run();
}

/**
 * Marks a version failed (never one that succeeded); with `followUp`, starts the conversation's
 * follow-up rebuild as that version when one is due (see {@link followUpStatements}), in the same
 * transaction. Returns the follow-up when it started: the caller enqueues it.
 */
export async function markFailed(
  db: D1Database,
  tenantId: string,
  conversationId: string,
  version: string,
  error: { code: string; message: string },
  now: string,
  followUp?: string,
): Promise<{ followUp: string | null }> {
  const results = await db.batch([
    db
      .prepare(
        `UPDATE versions SET status = 'failed', error_code = ?, error_message = ?, updated_at = ?
         WHERE tenant_id = ? AND conversation_id = ? AND version = ? AND status != 'succeeded'`,
      )
      .bind(error.code, error.message.slice(0, 1000), now, tenantId, conversationId, version),
    ...(followUp === undefined
      ? []
      : followUpStatements(db, tenantId, conversationId, followUp, now)),
  ]);
  return { followUp: followUp !== undefined && results[1].meta.changes === 1 ? followUp : null };
}

/**
 * Rebuilds in flight with `status` that nothing has moved since `quietBefore`, oldest first, across
 * tenants (for the scheduled poll; each comes with its tenant and conversation).
 */
export async function quietInFlight(
  db: D1Database,
  status: "queued" | "submitted",
  quietBefore: string,
  limit: number,
): Promise<Array<{ tenantId: string; conversationId: string; record: VersionRecord }>> {
  const { results } = await db
    .prepare(
      "SELECT * FROM versions WHERE status = ? AND updated_at < ? ORDER BY updated_at LIMIT ?",
    )
    .bind(status, quietBefore, limit)
    .all<VersionRow & { tenant_id: string; conversation_id: string }>();
  return results.map((r) => ({
    tenantId: r.tenant_id,
    conversationId: r.conversation_id,
    record: toRecord(r),
  }));
}

/**
 * Stores a finished version's manifest (and window vectors and terms, chunked) and makes it active, in one
 * transaction; the active version does not move if it is already this one or a newer one. Window
 * vectors are kept for the active version and the newest succeeded one before it (a question may
 * still be routing by that one); older versions' are deleted. The runner's last message id is kept
 * when it is one of the conversation's (the version's message count becomes its seq), so the next
 * rebuild can continue this version; the reason the consumer recorded stays unless the runner built
 * another kind than was sent. With `followUp`, starts the follow-up rebuild when one is due
 * (see {@link followUpStatements}). Returns whether it became active, and the follow-up if it started.
 */
export async function completeVersion(
  db: D1Database,
  tenantId: string,
  conversationId: string,
  manifest: CompletedVersion,
  now: string,
  followUp?: string,
): Promise<{ activated: boolean; followUp: string | null }> {
  const routing = manifest.routing ?? { rule: "centroid" as const };
  const chunks =
    routing.rule === "centroid" ? [] : windowChunks(routing, manifest.embedder.dimension);
  const results = await db.batch([
    ...chunks.map((chunk, i) =>
      db
        .prepare(
          "INSERT OR REPLACE INTO version_windows (tenant_id, conversation_id, version, chunk, vectors, episodes, terms) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(
          tenantId,
          conversationId,
          manifest.version,
          i,
          chunk.vectors,
          JSON.stringify(chunk.episodes),
          chunk.terms === null ? null : JSON.stringify(chunk.terms),
        ),
    ),
    db
      .prepare(
        `UPDATE versions SET status = 'succeeded', episodes = ?, embedder_model = ?, embedder_dimension = ?, manifest_key = ?, context_tokens = ?,
                routing_rule = ?, routing_k = ?, episode_details = ?, stage = 'done', percent = 100, eta_seconds = 0, error_code = NULL, error_message = NULL,
                updated_at = ?
         WHERE tenant_id = ? AND conversation_id = ? AND version = ?`,
      )
      .bind(
        JSON.stringify(manifest.episodes),
        manifest.embedder.modelId,
        manifest.embedder.dimension,
        manifest.manifestKey,
        manifest.contextTokens,
        routing.rule,
        routing.rule === "vote" ? routing.k : null,
        manifest.details ? JSON.stringify(manifest.details) : null,
        now,
        tenantId,
        conversationId,
        manifest.version,
      ),
    db
      .prepare(
        `UPDATE versions SET kind = ?4, reason = CASE WHEN kind IS ?4 AND reason IS NOT NULL THEN reason ELSE COALESCE(?5, reason) END, base_version = ?6,
                last_message_id = (SELECT client_id FROM messages WHERE tenant_id = ?1 AND conversation_id = ?2 AND client_id = ?7),
                message_count = COALESCE((SELECT seq FROM messages WHERE tenant_id = ?1 AND conversation_id = ?2 AND client_id = ?7), message_count)
         WHERE tenant_id = ?1 AND conversation_id = ?2 AND version = ?3`,
      )
      .bind(
        tenantId,
        conversationId,
        manifest.version,
        manifest.kind ?? "full",
        manifest.reason?.slice(0, 1000) ?? null,
        manifest.kind === "incremental" ? (manifest.baseVersion ?? null) : null,
        manifest.lastMessageId ?? null,
      ),
    db
      .prepare(
        `UPDATE conversations SET active_version = ?3, updated_at = ?4
         WHERE tenant_id = ?1 AND id = ?2 AND (active_version IS NULL OR active_version < ?3)
           AND EXISTS (SELECT 1 FROM versions WHERE tenant_id = ?1 AND conversation_id = ?2 AND version = ?3 AND status = 'succeeded')`,
      )
      .bind(tenantId, conversationId, manifest.version, now),
    db
      .prepare(
        `DELETE FROM version_windows WHERE tenant_id = ?1 AND conversation_id = ?2 AND version < (
           SELECT MAX(v.version) FROM versions v WHERE v.tenant_id = ?1 AND v.conversation_id = ?2 AND v.status = 'succeeded'
             AND v.version < (SELECT active_version FROM conversations WHERE tenant_id = ?1 AND id = ?2))`,
      )
      .bind(tenantId, conversationId),
    ...(followUp === undefined
      ? []
      : followUpStatements(db, tenantId, conversationId, followUp, now)),
  ]);
  return {
    activated: results[chunks.length + 2].meta.changes === 1,
    followUp:
      followUp !== undefined && results[chunks.length + 4].meta.changes === 1 ? followUp : null,
  };
}

/**
 * A job's window vectors, episodes and (for `lexical`) terms, in rows of consecutive windows with at
 * most {@link WINDOW_CHUNK_BYTES} bytes of vectors and {@link WINDOW_TERMS_CHUNK_CHARS} characters of
 * terms (at least one window each).
 */
function windowChunks(
  routing: Exclude<JobRouting, { rule: "centroid" }>,
  dimension: number,
): Array<{ vectors: string; episodes: number[]; terms: string[] | null }> {
  const vectors = decodeWindowVectors(routing.windowVectors, dimension);
  const terms = routing.rule === "lexical" ? routing.windowTerms : null;
  const perChunk = Math.max(1, Math.floor(WINDOW_CHUNK_BYTES / dimension));
  const chunks: Array<{ vectors: string; episodes: number[]; terms: string[] | null }> = [];
  for (let at = 0, end: number; at < vectors.length; at = end) {
    let chars = 0;
    for (end = at; end < vectors.length && end - at < perChunk; end++) {
      // Each term string costs its quotes and comma in the row's JSON as well.
      const next = terms === null ? 0 : terms[end].length + 3;
      if (end > at && chars + next > WINDOW_TERMS_CHUNK_CHARS) break;
      chars += next;
    }
    chunks.push({
      // Re-encoding a stored vector gives its bytes back: each one's largest |entry| is already 127.
      vectors: encodeWindowVectors(vectors.slice(at, end)),
      episodes: routing.windowEpisodes.slice(at, end),
      terms: terms === null ? null : terms.slice(at, end),
    });
  }
  return chunks;
}

/** The manifest of a succeeded version of the tenant's conversation, or null. */
export async function getManifest(
  db: D1Database,
  tenantId: string,
  conversationId: string,
  version: string,
): Promise<Manifest | null> {
  const row = await db
    .prepare(
      "SELECT version, episodes, embedder_model, embedder_dimension, routing_rule, routing_k FROM versions WHERE tenant_id = ? AND conversation_id = ? AND version = ? AND status = 'succeeded'",
    )
    .bind(tenantId, conversationId, version)
    .first<
      Pick<
        VersionRow,
        | "version"
        | "episodes"
        | "embedder_model"
        | "embedder_dimension"
        | "routing_rule"
        | "routing_k"
      >
    >();
  if (
    !row ||
    row.episodes === null ||
    row.embedder_model === null ||
    row.embedder_dimension === null
  )
    return null;
  const manifest: Manifest = {
    version: row.version,
    episodes: JSON.parse(row.episodes) as Manifest["episodes"],
    embedder: { modelId: row.embedder_model, dimension: row.embedder_dimension },
    routing:
      row.routing_rule === "vote"
        ? { rule: "vote", k: row.routing_k ?? Number.NaN }
        : { rule: row.routing_rule ?? "centroid" },
  };
  if (manifest.routing.rule === "vote" && row.routing_k === null)
    throw new EpicacheError("internal", `version ${version} routes by vote but records no k`);
  if (manifest.routing.rule === "centroid") return manifest;
  const { results } = await db
    .prepare(
      "SELECT vectors, episodes, terms FROM version_windows WHERE tenant_id = ? AND conversation_id = ? AND version = ? ORDER BY chunk",
    )
    .bind(tenantId, conversationId, version)
    .all<{ vectors: string; episodes: string; terms: string | null }>();
  if (results.length === 0) {
    // Only a version two activations old has lost its windows: the question read it as active just before.
    throw new EpicacheError(
      "no_active_version",
      `version ${version} of conversation ${conversationId} is no longer active; ask again`,
    );
  }
  const lexical = manifest.routing.rule === "lexical";
  const vectors: Int8Array[] = [];
  const episodes: number[] = [];
  const terms: string[][] = [];
  for (const r of results) {
    vectors.push(...decodeWindowVectors(r.vectors, row.embedder_dimension));
    episodes.push(...(JSON.parse(r.episodes) as number[]));
    if (!lexical) continue;
    if (r.terms === null)
      throw new EpicacheError(
        "internal",
        `version ${version} routes by lexical but a row of its windows has no terms`,
      );
    // A window's terms were joined by single spaces; "" has none.
    terms.push(...(JSON.parse(r.terms) as string[]).map((t) => (t === "" ? [] : t.split(" "))));
  }
  return { ...manifest, windows: lexical ? { vectors, episodes, terms } : { vectors, episodes } };
}

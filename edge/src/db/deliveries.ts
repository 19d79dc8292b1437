/**
 * What has been received once and must not be acted on twice: Standard Webhooks deliveries (by
 * tenant and `webhook-id`) and signed runner callbacks (by request id).
 */

/** The version a webhook delivery enqueued, or null if this `webhook-id` is new for the tenant. */
export async function findDelivery(
  db: D1Database,
  tenantId: string,
  webhookId: string,
): Promise<{ conversationId: string; version: string } | null> {
  const row = await db
    .prepare(
      "SELECT conversation_id, version FROM webhook_deliveries WHERE tenant_id = ? AND webhook_id = ?",
    )
    .bind(tenantId, webhookId)
    .first<{ conversation_id: string; version: string }>();
  return row ? { conversationId: row.conversation_id, version: row.version } : null;
}

/**
 * The statement that records a delivery (it fails on a `webhook-id` already recorded), naming the
 * version `versionSql` picks when it runs: an SQL expression over ?1 (tenant), ?2 (conversation)
 * and ?3 (`version`).
 */
export function recordDelivery(
  db: D1Database,
  tenantId: string,
  webhookId: string,
  conversationId: string,
  versionSql: string,
  version: string,
  nowSeconds: number,
): D1PreparedStatement {
  return db
    .prepare(
      `INSERT INTO webhook_deliveries (tenant_id, webhook_id, conversation_id, version, received_at) SELECT ?1, ?4, ?2, ${versionSql}, ?5`,
    )
    .bind(tenantId, conversationId, version, webhookId, Math.floor(nowSeconds));
}

/** A delivery's version and that version's status (null when it names no version row), as {@link namedByDelivery} reads it. */
export interface DeliveryNamed {
  version: string;
  status: string | null;
}

/**
 * The statement that reads the version a delivery names and that version's status, batched after
 * {@link recordDelivery} in the same transaction (its first row is a {@link DeliveryNamed}).
 */
export function namedByDelivery(
  db: D1Database,
  tenantId: string,
  webhookId: string,
): D1PreparedStatement {
  return db
    .prepare(
      "SELECT d.version, v.status FROM webhook_deliveries d LEFT JOIN versions v ON v.tenant_id = d.tenant_id AND v.conversation_id = d.conversation_id AND v.version = d.version WHERE d.tenant_id = ? AND d.webhook_id = ?",
    )
    .bind(tenantId, webhookId);
}

/**
 * How long a delivery's `webhook-id` is remembered: longer than any sender's retry schedule (Standard
 * Webhooks senders retry the same id for up to a few days), so a late retry still enqueues nothing.
 */
export const DELIVERY_KEEP_SECONDS = 7 * 24 * 3600;

/** Forgets deliveries received more than `keepSeconds` ago (the scheduled handler, once a minute); how many. */
export async function pruneDeliveries(
  db: D1Database,
  nowSeconds: number,
  keepSeconds = DELIVERY_KEEP_SECONDS,
): Promise<number> {
  const r = await db
    .prepare("DELETE FROM webhook_deliveries WHERE received_at < ?")
    .bind(Math.floor(nowSeconds) - keepSeconds)
    .run();
  return r.meta.changes;
}

/** Forgets a delivery (when its job could not be enqueued, so the sender's retry is not a duplicate). */
export async function deleteDelivery(
  db: D1Database,
  tenantId: string,
  webhookId: string,
): Promise<void> {
  await db
    .prepare("DELETE FROM webhook_deliveries WHERE tenant_id = ? AND webhook_id = ?")
    .bind(tenantId, webhookId)
    .run();
}

/**
 * Records a runner request id; true when it was already recorded (a replay). Ids older than
 * `keepSeconds` are forgotten: the signature's timestamp tolerance refuses those requests anyway.
 */
export async function runnerRequestSeen(
  db: D1Database,
  requestId: string,
  nowSeconds: number,
  keepSeconds = 900,
): Promise<boolean> {
  const [insert] = await db.batch([
    db
      .prepare(
        "INSERT INTO runner_request_ids (request_id, seen_at) VALUES (?, ?) ON CONFLICT (request_id) DO NOTHING",
      )
      .bind(requestId, Math.floor(nowSeconds)),
    db
      .prepare("DELETE FROM runner_request_ids WHERE seen_at < ?")
      .bind(Math.floor(nowSeconds) - keepSeconds),
  ]);
  return insert.meta.changes === 0;
}

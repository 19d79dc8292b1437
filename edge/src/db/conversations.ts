/** Conversations of a tenant: created by their first messages; hold the active version. */

/** A conversation row as the routes see it. */
export interface Conversation {
  id: string;
  messageCount: number;
  activeVersion: string | null;
  /** A webhook came while a rebuild was in flight: one more rebuild is due when it settles. */
  followUp: boolean;
  /** The transcript's bytes in a full rebuild's body (db/messages.ts, messageBytes). */
  transcriptBytes: number;
  createdAt: string;
  updatedAt: string;
}

interface ConversationRow {
  id: string;
  message_count: number;
  active_version: string | null;
  follow_up: number;
  transcript_bytes: number;
  created_at: string;
  updated_at: string;
}

/** The conversation's active version: null when it has none, or the tenant has no such conversation. */
export async function activeVersionOf(
  db: D1Database,
  tenantId: string,
  conversationId: string,
): Promise<string | null> {
  const row = await db
    .prepare("SELECT active_version FROM conversations WHERE tenant_id = ? AND id = ?")
    .bind(tenantId, conversationId)
    .first<{ active_version: string | null }>();
  return row?.active_version ?? null;
}

/** The tenant's conversation, or null (also when it belongs to another tenant). */
export async function getConversation(
  db: D1Database,
  tenantId: string,
  conversationId: string,
): Promise<Conversation | null> {
  const row = await db
    .prepare(
      "SELECT id, message_count, active_version, follow_up, transcript_bytes, created_at, updated_at FROM conversations WHERE tenant_id = ? AND id = ?",
    )
    .bind(tenantId, conversationId)
    .first<ConversationRow>();
  return row
    ? {
        id: row.id,
        messageCount: row.message_count,
        activeVersion: row.active_version,
        followUp: row.follow_up === 1,
        transcriptBytes: row.transcript_bytes,
        createdAt: row.created_at,
        updatedAt: row.updated_at,
      }
    : null;
}

/**
 * The tenant's conversation, created if the tenant has fewer than `maxConversations`; null when it
 * did not exist and the tenant is at its limit.
 */
export async function ensureConversation(
  db: D1Database,
  tenantId: string,
  conversationId: string,
  maxConversations: number,
  now: string,
): Promise<Conversation | null> {
  await db
    .prepare(
      `INSERT INTO conversations (tenant_id, id, message_count, created_at, updated_at)
       SELECT ?1, ?2, 0, ?3, ?3 WHERE (SELECT COUNT(*) FROM conversations WHERE tenant_id = ?1) < ?4
       ON CONFLICT (tenant_id, id) DO NOTHING`,
    )
    .bind(tenantId, conversationId, now, maxConversations)
    .run();
  return getConversation(db, tenantId, conversationId);
}

/**
 * The transcript of a conversation: messages in append order (seq 1, 2, …), each with the client's
 * id, so a retried append adds nothing twice and loses nothing.
 */
import type { TranscriptMessage } from "@epicache/shared";

/** A message as a client appends it (the id is required here: it makes retries idempotent). */
export interface NewMessage {
  id: string;
  speaker: string;
  text: string;
  timestamp?: string;
  session?: string | number;
}

/** Which of `clientIds` the conversation already holds. */
export async function existingClientIds(db: D1Database, tenantId: string, conversationId: string, clientIds: readonly string[]): Promise<Set<string>> {
  // One bound JSON array instead of one parameter per id (D1 binds at most 100 parameters).
  const { results } = await db
    .prepare("SELECT client_id FROM messages WHERE tenant_id = ? AND conversation_id = ? AND client_id IN (SELECT value FROM json_each(?))")
    .bind(tenantId, conversationId, JSON.stringify(clientIds))
    .all<{ client_id: string }>();
  return new Set(results.map((r) => r.client_id));
}

/**
 * Appends the messages whose ids the conversation does not hold yet, in the given order after the
 * last one, and updates the conversation's count: one transaction, so a concurrent or retried append
 * interleaves whole and never duplicates. Returns how many were appended and the new count.
 */
export async function appendMessages(db: D1Database, tenantId: string, conversationId: string, messages: readonly NewMessage[], now: string): Promise<{ appended: number; messageCount: number }> {
  // Absent fields stay absent (JSON null would be stored as the text 'null' by `->`).
  const rows = messages.map((m) => ({ id: m.id, speaker: m.speaker, text: m.text, timestamp: m.timestamp, session: m.session }));
  const [insert, , count] = await db.batch([
    // The window numbers the rows left after the duplicate filter, so seqs stay contiguous; SQLite
    // materialises the SELECT before inserting (it reads the table it writes).
    db
      .prepare(
        `INSERT INTO messages (tenant_id, conversation_id, seq, client_id, speaker, text, timestamp, session, created_at)
         SELECT ?1, ?2,
                (SELECT COALESCE(MAX(seq), 0) FROM messages WHERE tenant_id = ?1 AND conversation_id = ?2) + ROW_NUMBER() OVER (ORDER BY j.key),
                j.value ->> 'id', j.value ->> 'speaker', j.value ->> 'text', j.value ->> 'timestamp', j.value -> 'session', ?3
         FROM json_each(?4) AS j
         WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.tenant_id = ?1 AND m.conversation_id = ?2 AND m.client_id = j.value ->> 'id')
         ORDER BY j.key`,
      )
      .bind(tenantId, conversationId, now, JSON.stringify(rows)),
    db
      .prepare("UPDATE conversations SET message_count = (SELECT COUNT(*) FROM messages WHERE tenant_id = ?1 AND conversation_id = ?2), updated_at = ?3 WHERE tenant_id = ?1 AND id = ?2")
      .bind(tenantId, conversationId, now),
    db.prepare("SELECT message_count FROM conversations WHERE tenant_id = ? AND id = ?").bind(tenantId, conversationId),
  ]);
  const messageCount = (count.results[0] as { message_count: number } | undefined)?.message_count ?? 0;
  return { appended: insert.meta.changes, messageCount };
}

interface MessageRow {
  client_id: string;
  speaker: string;
  text: string;
  timestamp: string | null;
  session: string | null;
}

/** The whole transcript in order, as the runner's rebuild takes it. */
export async function readTranscript(db: D1Database, tenantId: string, conversationId: string): Promise<TranscriptMessage[]> {
  const { results } = await db
    .prepare("SELECT client_id, speaker, text, timestamp, session FROM messages WHERE tenant_id = ? AND conversation_id = ? ORDER BY seq")
    .bind(tenantId, conversationId)
    .all<MessageRow>();
  return results.map((r) => {
    const message: TranscriptMessage = { id: r.client_id, speaker: r.speaker, text: r.text };
    if (r.timestamp !== null) message.timestamp = r.timestamp;
    if (r.session !== null) message.session = JSON.parse(r.session) as string | number;
    return message;
  });
}

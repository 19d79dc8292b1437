/**
 * The transcript of a conversation: messages in append order (seq 1, 2, …), each with the client's
 * id, so a retried append adds nothing twice and loses nothing. Each message records its size in a
 * rebuild's body, and the conversation their sum, which appends keep under a cap.
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

/**
 * The message's size in a rebuild request's body: the UTF-8 bytes of its JSON as
 * {@link readTranscript} gives it, plus one for the comma after it. (Migration 0004 computes the
 * same for rows stored before.)
 *
 * @example
 * ```ts
 * messageBytes({ id: "m1", speaker: "Ann", text: "Hi" }); // 39: {"id":"m1","speaker":"Ann","text":"Hi"} and a comma
 * ```
 */
export function messageBytes(m: NewMessage): number {
  return new TextEncoder().encode(JSON.stringify(toTranscriptMessage(m))).length + 1;
}

function toTranscriptMessage(m: NewMessage): TranscriptMessage {
  const message: TranscriptMessage = { id: m.id, speaker: m.speaker, text: m.text };
  if (m.timestamp !== undefined) message.timestamp = m.timestamp;
  if (m.session !== undefined) message.session = m.session;
  return message;
}

/** What an append may not pass: the conversation's messages, and its transcript's bytes. */
export interface AppendCaps {
  maxMessages: number;
  maxBytes: number;
}

/** Which of `clientIds` the conversation already holds. */
export async function existingClientIds(
  db: D1Database,
  tenantId: string,
  conversationId: string,
  clientIds: readonly string[],
): Promise<Set<string>> {
  // One bound JSON array instead of one parameter per id (D1 binds at most 100 parameters).
  const { results } = await db
    .prepare(
      "SELECT client_id FROM messages WHERE tenant_id = ? AND conversation_id = ? AND client_id IN (SELECT value FROM json_each(?))",
    )
    .bind(tenantId, conversationId, JSON.stringify(clientIds))
    .all<{ client_id: string }>();
  return new Set(results.map((r) => r.client_id));
}

/**
 * Appends the messages whose ids the conversation does not hold yet, in the given order after the
 * last one, and updates the conversation's count and bytes: one transaction, so a concurrent or
 * retried append interleaves whole and never duplicates. Appends nothing when the messages (all of
 * them, counted before duplicates are dropped) would take the conversation past `caps`: checked in
 * the transaction, so concurrent appends cannot pass them together. Returns how many were appended,
 * the new count and bytes, and which cap refused the append, if one did.
 */
export async function appendMessages(
  db: D1Database,
  tenantId: string,
  conversationId: string,
  messages: readonly NewMessage[],
  now: string,
  caps: AppendCaps,
): Promise<{
  appended: number;
  messageCount: number;
  transcriptBytes: number;
  refused: "messages" | "bytes" | null;
}> {
  // Absent fields stay absent (JSON null would be stored as the text 'null' by `->`).
  const rows = messages.map((m) => ({
    id: m.id,
    speaker: m.speaker,
    text: m.text,
    timestamp: m.timestamp,
    session: m.session,
    bytes: messageBytes(m),
  }));
  const bytes = rows.reduce((sum, r) => sum + r.bytes, 0);
  const [before, insert, , after] = await db.batch([
    db
      .prepare(
        "SELECT message_count + ?3 > ?4 AS over_messages, transcript_bytes + ?5 > ?6 AS over_bytes FROM conversations WHERE tenant_id = ?1 AND id = ?2",
      )
      .bind(tenantId, conversationId, messages.length, caps.maxMessages, bytes, caps.maxBytes),
    // The window numbers the rows left after the duplicate filter, so seqs stay contiguous; SQLite
    // materialises the SELECT before inserting (it reads the table it writes).
    db
      .prepare(
        `INSERT INTO messages (tenant_id, conversation_id, seq, client_id, speaker, text, timestamp, session, bytes, created_at)
         SELECT ?1, ?2,
                (SELECT COALESCE(MAX(seq), 0) FROM messages WHERE tenant_id = ?1 AND conversation_id = ?2) + ROW_NUMBER() OVER (ORDER BY j.key),
                j.value ->> 'id', j.value ->> 'speaker', j.value ->> 'text', j.value ->> 'timestamp', j.value -> 'session', j.value ->> 'bytes', ?3
         FROM json_each(?4) AS j
         WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.tenant_id = ?1 AND m.conversation_id = ?2 AND m.client_id = j.value ->> 'id')
           AND NOT EXISTS (SELECT 1 FROM conversations c WHERE c.tenant_id = ?1 AND c.id = ?2 AND (c.message_count + ?5 > ?6 OR c.transcript_bytes + ?7 > ?8))
         ORDER BY j.key`,
      )
      .bind(
        tenantId,
        conversationId,
        now,
        JSON.stringify(rows),
        messages.length,
        caps.maxMessages,
        bytes,
        caps.maxBytes,
      ),
    db
      .prepare(
        `UPDATE conversations SET (message_count, transcript_bytes) = (SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM messages WHERE tenant_id = ?1 AND conversation_id = ?2),
                updated_at = ?3
         WHERE tenant_id = ?1 AND id = ?2`,
      )
      .bind(tenantId, conversationId, now),
    db
      .prepare(
        "SELECT message_count, transcript_bytes FROM conversations WHERE tenant_id = ? AND id = ?",
      )
      .bind(tenantId, conversationId),
  ]);
  const over = before.results[0] as { over_messages: number; over_bytes: number } | undefined;
  const counts = after.results[0] as
    { message_count: number; transcript_bytes: number } | undefined;
  return {
    appended: insert.meta.changes,
    messageCount: counts?.message_count ?? 0,
    transcriptBytes: counts?.transcript_bytes ?? 0,
    refused: over?.over_messages ? "messages" : over?.over_bytes ? "bytes" : null,
  };
}

interface MessageRow {
  client_id: string;
  speaker: string;
  text: string;
  timestamp: string | null;
  session: string | null;
}

/** The transcript in order from seq `after` + 1, with each message's seq. */
async function messagesAfterSeq(
  db: D1Database,
  tenantId: string,
  conversationId: string,
  after: number,
): Promise<Array<{ seq: number; message: TranscriptMessage }>> {
  const { results } = await db
    .prepare(
      "SELECT seq, client_id, speaker, text, timestamp, session FROM messages WHERE tenant_id = ? AND conversation_id = ? AND seq > ? ORDER BY seq",
    )
    .bind(tenantId, conversationId, after)
    .all<MessageRow & { seq: number }>();
  return results.map((r) => {
    const message: TranscriptMessage = { id: r.client_id, speaker: r.speaker, text: r.text };
    if (r.timestamp !== null) message.timestamp = r.timestamp;
    if (r.session !== null) message.session = JSON.parse(r.session) as string | number;
    return { seq: r.seq, message };
  });
}

/** The whole transcript in order, as the runner's rebuild takes it. */
export async function readTranscript(
  db: D1Database,
  tenantId: string,
  conversationId: string,
): Promise<TranscriptMessage[]> {
  return (await messagesAfterSeq(db, tenantId, conversationId, 0)).map((r) => r.message);
}

/**
 * The messages appended after the one with client id `after`, in order: what an update of a
 * version ending at that message sends. `lastSeq` is the seq of the last one (of `after` itself
 * when none came since), which is the count of messages up to it. Null when `after` is not one of
 * the conversation's messages.
 */
export async function readTranscriptAfter(
  db: D1Database,
  tenantId: string,
  conversationId: string,
  after: string,
): Promise<{ messages: TranscriptMessage[]; lastSeq: number } | null> {
  const row = await db
    .prepare(
      "SELECT seq FROM messages WHERE tenant_id = ? AND conversation_id = ? AND client_id = ?",
    )
    .bind(tenantId, conversationId, after)
    .first<{ seq: number }>();
  if (row === null) return null;
  const rows = await messagesAfterSeq(db, tenantId, conversationId, row.seq);
  return {
    messages: rows.map((r) => r.message),
    lastSeq: rows.length > 0 ? rows[rows.length - 1].seq : row.seq,
  };
}

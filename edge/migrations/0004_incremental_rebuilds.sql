-- Incremental rebuilds: a rebuild may continue the active version with only the messages after its
-- last one; a conversation has at most one rebuild queued or running, with at most one follow-up
-- waiting; a transcript is bounded in bytes so that a full rebuild of it fits in a runner's body.

-- How the version is made: 'full' (from the whole transcript) or 'incremental' (base_version
-- continued with the messages after its last). Set to what the consumer sends, then to what the
-- runner reports. On a queued row, 'full' tells the consumer to send the whole transcript (the
-- fallback after an update failed with base_unusable). NULL while queued otherwise, and for
-- versions stored before this migration.
ALTER TABLE versions ADD COLUMN kind TEXT CHECK (kind IN ('full', 'incremental'));
-- Why that kind, in words: the runner's ("full build", "new messages") or the edge's ("no usable
-- base: …" for a fallback).
ALTER TABLE versions ADD COLUMN reason TEXT;
ALTER TABLE versions ADD COLUMN base_version TEXT;
-- The client id of the version's last message, as the runner reported it: what the next update
-- continues from. NULL from runners before updates, whose versions are never a base. A succeeded
-- version's message_count is then that message's seq (seqs are contiguous from 1).
ALTER TABLE versions ADD COLUMN last_message_id TEXT;
-- The consumer looks for a conversation's rebuild queued or running on every webhook and settle.
CREATE INDEX versions_status ON versions(tenant_id, conversation_id, status);

-- 1 when a webhook came while a rebuild was queued or running: one follow-up rebuild starts when
-- that one settles, if the transcript holds messages the active version does not.
ALTER TABLE conversations ADD COLUMN follow_up INTEGER NOT NULL DEFAULT 0;
-- The sum of the messages' bytes: the transcript's size in a full rebuild's body, at most
-- MAX_TRANSCRIPT_BYTES.
ALTER TABLE conversations ADD COLUMN transcript_bytes INTEGER NOT NULL DEFAULT 0;

-- UTF-8 bytes of the message's JSON as a rebuild sends it, plus one for the comma after it
-- (db/messages.ts, messageBytes). Rows stored before: the same sum, computed here.
ALTER TABLE messages ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;
UPDATE messages SET bytes = 1 + length(CAST(json_object('id', client_id, 'speaker', speaker, 'text', text) AS BLOB))
  + CASE WHEN timestamp IS NULL THEN 0 ELSE length(',"timestamp":') + length(CAST(json_quote(timestamp) AS BLOB)) END
  + CASE WHEN session IS NULL THEN 0 ELSE length(',"session":') + length(CAST(session AS BLOB)) END;
UPDATE conversations SET transcript_bytes = (
  SELECT COALESCE(SUM(m.bytes), 0) FROM messages m WHERE m.tenant_id = conversations.tenant_id AND m.conversation_id = conversations.id);

-- The edge's tables (D1). Every row belongs to a tenant, and every query filters by tenant_id.

-- A tenant. Limits are NULL for the Worker's defaults (the MAX_* and REQUESTS_PER_MINUTE vars).
CREATE TABLE tenants (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  -- Standard Webhooks secret (whsec_<base64>); kept whole, since verifying needs it.
  webhook_secret TEXT NOT NULL,
  max_conversations INTEGER,
  max_messages_per_conversation INTEGER,
  requests_per_minute INTEGER,
  created_at TEXT NOT NULL
);

-- API keys, as SHA-256 hex of the key: the key itself is shown once, at creation.
CREATE TABLE api_keys (
  key_hash TEXT PRIMARY KEY,
  tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  created_at TEXT NOT NULL
);
CREATE INDEX api_keys_tenant ON api_keys(tenant_id);

CREATE TABLE conversations (
  tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  id TEXT NOT NULL,
  message_count INTEGER NOT NULL DEFAULT 0,
  -- The version questions are answered from; only ever moves to a newer version.
  active_version TEXT,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  PRIMARY KEY (tenant_id, id)
);

-- The transcript, in append order (seq from 1). client_id makes appends idempotent.
CREATE TABLE messages (
  tenant_id TEXT NOT NULL,
  conversation_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  client_id TEXT NOT NULL,
  speaker TEXT NOT NULL,
  text TEXT NOT NULL,
  timestamp TEXT,
  -- JSON: a string or an integer, as the client sent it.
  session TEXT,
  created_at TEXT NOT NULL,
  PRIMARY KEY (tenant_id, conversation_id, seq),
  UNIQUE (tenant_id, conversation_id, client_id),
  FOREIGN KEY (tenant_id, conversation_id) REFERENCES conversations(tenant_id, id) ON DELETE CASCADE
);

-- One rebuild per version: queued → submitted (a runner took the job) → succeeded | failed.
-- A succeeded row is the version's manifest as the edge needs it (centroids, episode ids, embedder).
CREATE TABLE versions (
  tenant_id TEXT NOT NULL,
  conversation_id TEXT NOT NULL,
  version TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('queued', 'submitted', 'succeeded', 'failed')),
  -- Messages in the transcript snapshot sent to the runner.
  message_count INTEGER,
  runner_url TEXT,
  job_id TEXT,
  stage TEXT,
  percent REAL,
  eta_seconds REAL,
  error_code TEXT,
  error_message TEXT,
  manifest_key TEXT,
  -- JSON [{id, centroid: number[]}], in the runner's episode order.
  episodes TEXT,
  embedder_model TEXT,
  embedder_dimension INTEGER,
  context_tokens INTEGER,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  PRIMARY KEY (tenant_id, conversation_id, version),
  FOREIGN KEY (tenant_id, conversation_id) REFERENCES conversations(tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX versions_job ON versions(tenant_id, job_id);

-- Standard Webhooks deliveries seen (webhook-id), so a redelivery does not enqueue twice.
CREATE TABLE webhook_deliveries (
  tenant_id TEXT NOT NULL,
  webhook_id TEXT NOT NULL,
  conversation_id TEXT NOT NULL,
  version TEXT NOT NULL,
  received_at INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, webhook_id)
);

-- Request ids of signed runner callbacks seen, so a replayed callback is refused.
CREATE TABLE runner_request_ids (
  request_id TEXT PRIMARY KEY,
  seen_at INTEGER NOT NULL
);

-- Requests per tenant per minute (minute = Unix time / 60).
CREATE TABLE rate_windows (
  tenant_id TEXT NOT NULL,
  minute INTEGER NOT NULL,
  count INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, minute)
);

/** Tenants and their API keys (stored as SHA-256 hashes). */
import { RUNNER_LIMITS } from "@epicache/shared";

/** Per-tenant limits; a tenant's own values override the Worker's defaults (its vars). */
export interface TenantLimits {
  maxConversations: number;
  maxMessagesPerConversation: number;
  requestsPerMinute: number;
}

/** A tenant as the routes see it. */
export interface Tenant {
  id: string;
  name: string;
  webhookSecret: string;
  /** Its own limits; null fields take the Worker's defaults. */
  limits: { [K in keyof TenantLimits]: number | null };
}

interface TenantRow {
  id: string;
  name: string;
  webhook_secret: string;
  max_conversations: number | null;
  max_messages_per_conversation: number | null;
  requests_per_minute: number | null;
}

function toTenant(row: TenantRow): Tenant {
  return {
    id: row.id,
    name: row.name,
    webhookSecret: row.webhook_secret,
    limits: {
      maxConversations: row.max_conversations,
      maxMessagesPerConversation: row.max_messages_per_conversation,
      requestsPerMinute: row.requests_per_minute,
    },
  };
}

/**
 * The tenant's effective limits: its own where set, else `defaults`; messages per conversation at
 * most what a runner's rebuild takes (tenants created before that bound may record more).
 */
export function limitsOf(tenant: Tenant, defaults: TenantLimits): TenantLimits {
  return {
    maxConversations: tenant.limits.maxConversations ?? defaults.maxConversations,
    maxMessagesPerConversation: Math.min(
      tenant.limits.maxMessagesPerConversation ?? defaults.maxMessagesPerConversation,
      RUNNER_LIMITS.messages,
    ),
    requestsPerMinute: tenant.limits.requestsPerMinute ?? defaults.requestsPerMinute,
  };
}

/** Creates a tenant and its first API key, in one transaction. */
export async function createTenant(
  db: D1Database,
  tenant: Tenant,
  apiKeyHash: string,
  now: string,
): Promise<void> {
  await db.batch([
    db
      .prepare(
        "INSERT INTO tenants (id, name, webhook_secret, max_conversations, max_messages_per_conversation, requests_per_minute, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
      )
      .bind(
        tenant.id,
        tenant.name,
        tenant.webhookSecret,
        tenant.limits.maxConversations,
        tenant.limits.maxMessagesPerConversation,
        tenant.limits.requestsPerMinute,
        now,
      ),
    db
      .prepare("INSERT INTO api_keys (key_hash, tenant_id, created_at) VALUES (?, ?, ?)")
      .bind(apiKeyHash, tenant.id, now),
  ]);
}

/** The tenant with this id, or null. */
export async function getTenant(db: D1Database, tenantId: string): Promise<Tenant | null> {
  const row = await db
    .prepare("SELECT * FROM tenants WHERE id = ?")
    .bind(tenantId)
    .first<TenantRow>();
  return row ? toTenant(row) : null;
}

/** The tenant an API key hash belongs to, with the stored hash (for a constant-time compare), or null. */
export async function findTenantByKeyHash(
  db: D1Database,
  keyHash: string,
): Promise<{ tenant: Tenant; keyHash: string } | null> {
  const row = await db
    .prepare(
      "SELECT t.*, k.key_hash AS key_hash FROM api_keys k JOIN tenants t ON t.id = k.tenant_id WHERE k.key_hash = ?",
    )
    .bind(keyHash)
    .first<TenantRow & { key_hash: string }>();
  return row ? { tenant: toTenant(row), keyHash: row.key_hash } : null;
}

/**
 * Two tenants with the same shape of data, for the isolation and fuzz suites: each has `conv-1`
 * (three messages, version V1 active, V2 submitted to runner-a as `job-<tenant>-v2`) and
 * `shared-name` (two messages), so that ids collide across tenants. `snapshotTenant` reads every
 * row a tenant owns, to prove that requests made with the other tenant's credentials changed none.
 */
import { env } from "cloudflare:workers";
import { completeVersion } from "../db/versions";
import { call, newTenant } from "./helpers";

export const V1 = "v20260101T000000000Z-000001";
export const V2 = "v20260102T000000000Z-000002";
export const MINILM = "sentence-transformers/all-MiniLM-L6-v2";

/** A tenant's credentials and the ids of its seeded data. */
export interface SeededTenant {
  tenantId: string;
  apiKey: string;
  webhookSecret: string;
  /** The job id of V2 of conv-1, submitted to runner-a. */
  jobV2: string;
}

const msg = (id: string, text = `text of ${id}`) => ({ id, speaker: "Ann", text });

/** One tenant with the seeded data (a rate limit high enough for a fuzz run). */
export async function seedTenant(name: string): Promise<SeededTenant> {
  const tenant = await newTenant(name, { requestsPerMinute: 1_000_000 });
  for (const [conversation, messages] of [
    ["conv-1", [msg("m1"), msg("m2"), msg("m3")]],
    ["shared-name", [msg("m1"), msg("s2")]],
  ] as const) {
    const res = await call("POST", `/v1/conversations/${conversation}/messages`, {
      body: { messages },
      key: tenant.apiKey,
    });
    if (res.status !== 200)
      throw new Error(`seeding ${conversation}: ${res.status} ${await res.text()}`);
  }
  const now = new Date().toISOString();
  const jobV2 = `job-${tenant.tenantId}-v2`;
  await env.DB.batch([
    env.DB.prepare(
      "INSERT INTO versions (tenant_id, conversation_id, version, status, runner_url, job_id, message_count, created_at, updated_at) VALUES (?, 'conv-1', ?, 'submitted', 'http://runner-a.test', ?, 3, ?, ?)",
    ).bind(tenant.tenantId, V1, `job-${tenant.tenantId}-v1`, now, now),
    env.DB.prepare(
      "INSERT INTO versions (tenant_id, conversation_id, version, status, runner_url, job_id, message_count, created_at, updated_at) VALUES (?, 'conv-1', ?, 'submitted', 'http://runner-a.test', ?, 3, ?, ?)",
    ).bind(tenant.tenantId, V2, jobV2, now, now),
    env.DB.prepare(
      "INSERT INTO webhook_deliveries (tenant_id, webhook_id, conversation_id, version, received_at) VALUES (?, 'wh-seed', 'conv-1', ?, ?)",
    ).bind(tenant.tenantId, V2, Math.floor(Date.now() / 1000)),
  ]);
  await completeVersion(
    env.DB,
    tenant.tenantId,
    "conv-1",
    {
      version: V1,
      episodes: [
        { id: 10, centroid: [1, 0] },
        { id: 11, centroid: [0, 1] },
      ],
      embedder: { modelId: MINILM, dimension: 2 },
      manifestKey: "k",
      contextTokens: 1,
    },
    now,
  );
  return { ...tenant, jobV2 };
}

/** Every row `tenantId` owns, table by table, in a stable order. */
export async function snapshotTenant(tenantId: string): Promise<Record<string, unknown[]>> {
  const tables: [string, string][] = [
    ["tenants", "SELECT * FROM tenants WHERE id = ?1"],
    ["api_keys", "SELECT * FROM api_keys WHERE tenant_id = ?1 ORDER BY key_hash"],
    ["conversations", "SELECT * FROM conversations WHERE tenant_id = ?1 ORDER BY id"],
    ["messages", "SELECT * FROM messages WHERE tenant_id = ?1 ORDER BY conversation_id, seq"],
    ["versions", "SELECT * FROM versions WHERE tenant_id = ?1 ORDER BY conversation_id, version"],
    [
      "webhook_deliveries",
      "SELECT * FROM webhook_deliveries WHERE tenant_id = ?1 ORDER BY webhook_id",
    ],
    ["rate_windows", "SELECT * FROM rate_windows WHERE tenant_id = ?1 ORDER BY minute"],
  ];
  const results = await env.DB.batch(tables.map(([, sql]) => env.DB.prepare(sql).bind(tenantId)));
  return Object.fromEntries(tables.map(([name], i) => [name, results[i].results]));
}

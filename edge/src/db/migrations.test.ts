import { applyD1Migrations, type D1Migration } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { encodeWindowVectors } from "@epicache/shared";
import { completeVersion, getManifest } from "./versions";

const MIGRATIONS = (env as unknown as { TEST_MIGRATIONS: D1Migration[] }).TEST_MIGRATIONS;
const V1 = "v20260101T000000000Z-000001";
const V2 = "v20260102T000000000Z-000002";
const V3 = "v20260103T000000000Z-000003";
const V4 = "v20260104T000000000Z-000004";

/** Every table dropped (the file's database ends up migrated again by the test). */
async function dropAll(): Promise<void> {
  const { results } = await env.DB.prepare(
    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%'",
  ).all<{ name: string }>();
  // Children before parents: the foreign keys are enforced.
  const order = [
    "version_windows",
    "versions",
    "messages",
    "webhook_deliveries",
    "api_keys",
    "conversations",
    "tenants",
  ];
  const names = results
    .map((r) => r.name)
    .sort((a, b) => (order.indexOf(a) + 1 || 99) - (order.indexOf(b) + 1 || 99));
  for (const name of names) await env.DB.prepare(`DROP TABLE "${name}"`).run();
}

describe("migration 0003 (lexical routing)", () => {
  it("keeps the rule, k and window vectors of versions stored before it, and then takes lexical ones", async () => {
    await dropAll();
    await applyD1Migrations(
      env.DB,
      MIGRATIONS.filter((m) => m.name < "0003"),
    );
    const now = new Date().toISOString();
    const vectors = encodeWindowVectors([
      [1, 0],
      [0, 1],
    ]);
    // Four versions as the edge stored them after 0002: centroid, window, vote (k 3), and one before routing rules.
    await env.DB.batch([
      env.DB.prepare(
        "INSERT INTO tenants (id, name, webhook_secret, created_at) VALUES ('t1', 'T', 'whsec_x', ?)",
      ).bind(now),
      env.DB.prepare(
        "INSERT INTO conversations (tenant_id, id, created_at, updated_at) VALUES ('t1', 'c1', ?, ?)",
      ).bind(now, now),
      ...(
        [
          [V1, "centroid", null],
          [V2, "window", null],
          [V3, "vote", 3],
          [V4, null, null],
        ] as const
      ).map(([version, rule, k]) =>
        env.DB.prepare(
          `INSERT INTO versions (tenant_id, conversation_id, version, status, episodes, embedder_model, embedder_dimension, routing_rule, routing_k, created_at, updated_at)
           VALUES ('t1', 'c1', ?, 'succeeded', '[{"id":0,"centroid":[1,0]},{"id":1,"centroid":[0,1]}]', 'm', 2, ?, ?, ?, ?)`,
        ).bind(version, rule, k, now, now),
      ),
      ...[V2, V3].map((version) =>
        env.DB.prepare(
          "INSERT INTO version_windows (tenant_id, conversation_id, version, chunk, vectors, episodes) VALUES ('t1', 'c1', ?, 0, ?, '[1,0]')",
        ).bind(version, vectors),
      ),
    ]);
    await applyD1Migrations(env.DB, MIGRATIONS);

    expect((await getManifest(env.DB, "t1", "c1", V1))?.routing).toEqual({ rule: "centroid" });
    expect(await getManifest(env.DB, "t1", "c1", V2)).toMatchObject({
      routing: { rule: "window" },
      windows: { episodes: [1, 0] },
    });
    expect((await getManifest(env.DB, "t1", "c1", V2))?.windows).not.toHaveProperty("terms");
    expect(await getManifest(env.DB, "t1", "c1", V3)).toMatchObject({
      routing: { rule: "vote", k: 3 },
      windows: { episodes: [1, 0] },
    });
    expect((await getManifest(env.DB, "t1", "c1", V4))?.routing).toEqual({ rule: "centroid" });

    // The widened rule takes lexical, and no other new value.
    const V5 = "v20260105T000000000Z-000005";
    await env.DB.prepare(
      "INSERT INTO versions (tenant_id, conversation_id, version, status, created_at, updated_at) VALUES ('t1', 'c1', ?, 'submitted', ?, ?)",
    )
      .bind(V5, now, now)
      .run();
    await completeVersion(
      env.DB,
      "t1",
      "c1",
      {
        version: V5,
        episodes: [
          { id: 0, centroid: [1, 0] },
          { id: 1, centroid: [0, 1] },
        ],
        embedder: { modelId: "m", dimension: 2 },
        manifestKey: "k",
        contextTokens: 1,
        routing: {
          rule: "lexical",
          windowVectors: vectors,
          windowEpisodes: [1, 0],
          windowTerms: ["dog vet", ""],
        },
      },
      now,
    );
    expect(await getManifest(env.DB, "t1", "c1", V5)).toMatchObject({
      routing: { rule: "lexical" },
      windows: { episodes: [1, 0], terms: [["dog", "vet"], []] },
    });
    await expect(
      env.DB.prepare("UPDATE versions SET routing_rule = 'nearest' WHERE version = ?")
        .bind(V5)
        .run(),
    ).rejects.toThrow(/CHECK/);
  });
});

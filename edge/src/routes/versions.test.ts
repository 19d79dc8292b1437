import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { encodeWindowVectors } from "@epicache/shared";
import { completeVersion } from "../db/versions";
import { HISTORY_LIMIT, topTermsByEpisode } from "../db/version-history";
import { jobStatus } from "../testing/fake-runner";
import { call, errorCode, newTenant } from "../testing/helpers";
import { runnerCallback } from "../testing/rebuild-flow";

const V1 = "v20260101T000000000Z-000001";
const V2 = "v20260102T000000000Z-000002";
const V3 = "v20260103T000000000Z-000003";
const V4 = "v20260104T000000000Z-000004";

afterEach(() => vi.restoreAllMocks());

/** A tenant whose conv-1 (four messages) has `versions` submitted to runner-a as job-<version>. */
async function submitted(...versions: string[]) {
  const tenant = await newTenant();
  const messages = ["m1", "m2", "m3", "m4"].map((id) => ({
    id,
    speaker: "Ann",
    text: `text of ${id}`,
  }));
  await call("POST", "/v1/conversations/conv-1/messages", {
    body: { messages },
    key: tenant.apiKey,
  });
  const now = new Date().toISOString();
  for (const version of versions) {
    await env.DB.prepare(
      "INSERT INTO versions (tenant_id, conversation_id, version, status, runner_url, job_id, message_count, created_at, updated_at) VALUES (?, 'conv-1', ?, 'submitted', 'http://runner-a.test', ?, 4, ?, ?)",
    )
      .bind(tenant.tenantId, version, `job-${version}`, now, now)
      .run();
  }
  return tenant;
}

const get = async (key: string, path: string) => {
  const res = await call("GET", path, { key });
  return {
    status: res.status,
    body: (await res.json()) as Record<string, unknown> & {
      episodes?: unknown;
      versions?: unknown[];
    },
  };
};

/** Windows 0–4: episode 0 talks pottery, episode 1 running; "class" is in both. */
const LEXICAL = {
  rule: "lexical" as const,
  windowVectors: encodeWindowVectors([
    [1, 0],
    [1, 0.1],
    [0.9, 0],
    [0, 1],
    [0.1, 1],
  ]),
  windowEpisodes: [0, 0, 0, 1, 1],
  windowTerms: [
    "pottery class teacher",
    "pottery wheel",
    "pottery class",
    "marathon train class",
    "marathon lisbon",
  ],
};

describe("GET /v1/conversations/{id}/versions", () => {
  it("lists every rebuild newest first: status, kind, progress, and what a succeeded one built; the active one is marked", async () => {
    const { tenantId, apiKey } = await submitted(V1, V2, V3);
    expect(
      (
        await runnerCallback(
          jobStatus({
            id: `job-${V1}`,
            tenant: tenantId,
            conversation: "conv-1",
            version: V1,
            routing: { rule: "centroid" },
          }),
          testEnvOf(),
        )
      ).status,
    ).toBe(200);
    expect(
      (
        await runnerCallback(
          jobStatus({
            id: `job-${V2}`,
            tenant: tenantId,
            conversation: "conv-1",
            version: V2,
            status: "failed",
          }),
          testEnvOf(),
        )
      ).status,
    ).toBe(200);
    const { status, body } = await get(apiKey, "/v1/conversations/conv-1/versions");
    expect(status).toBe(200);
    expect(body.more).toBe(false);
    expect(body.versions).toEqual([
      expect.objectContaining({
        version: V3,
        status: "submitted",
        active: false,
        messageCount: 4,
        contextTokens: null,
        routing: null,
        episodeCount: null,
        error: null,
      }),
      expect.objectContaining({
        version: V2,
        status: "failed",
        active: false,
        episodeCount: null,
        error: { code: "conversation_invalid", message: expect.any(String) },
      }),
      expect.objectContaining({
        version: V1,
        status: "succeeded",
        active: true,
        kind: "full",
        stage: "done",
        progress: 100,
        etaSeconds: 0,
        contextTokens: 1234,
        routing: "centroid",
        episodeCount: 3,
      }),
    ]);
    // Every field of the schema, and nothing of the episodes' centroids.
    expect(Object.keys(body.versions?.[2] as object).sort()).toEqual(
      [
        "active",
        "baseVersion",
        "contextTokens",
        "createdAt",
        "episodeCount",
        "error",
        "etaSeconds",
        "kind",
        "messageCount",
        "progress",
        "reason",
        "routing",
        "stage",
        "status",
        "updatedAt",
        "version",
      ].sort(),
    );
  });

  it(`lists the newest ${HISTORY_LIMIT} and says there are more`, async () => {
    const { tenantId, apiKey } = await submitted();
    const now = new Date().toISOString();
    const ids = Array.from(
      { length: HISTORY_LIMIT + 1 },
      (_, i) => `v20260101T000000000Z-${String(i).padStart(6, "0")}`,
    );
    await env.DB.batch(
      ids.map((v) =>
        env.DB.prepare(
          "INSERT INTO versions (tenant_id, conversation_id, version, status, error_code, error_message, created_at, updated_at) VALUES (?, 'conv-1', ?, 'failed', 'internal', 'x', ?, ?)",
        ).bind(tenantId, v, now, now),
      ),
    );
    const { body } = await get(apiKey, "/v1/conversations/conv-1/versions");
    expect(body.versions).toHaveLength(HISTORY_LIMIT);
    expect((body.versions?.[0] as { version: string }).version).toBe(ids[HISTORY_LIMIT]);
    expect((body.versions?.[HISTORY_LIMIT - 1] as { version: string }).version).toBe(ids[1]);
    expect(body.more).toBe(true);
  });

  it("is empty for a conversation never rebuilt, 404 for an unknown one or another tenant's, 401 without the key", async () => {
    const { apiKey } = await submitted();
    expect(await get(apiKey, "/v1/conversations/conv-1/versions")).toEqual({
      status: 200,
      body: { versions: [], more: false },
    });
    const other = await newTenant();
    for (const [key, path] of [
      [apiKey, "/v1/conversations/conv-2/versions"],
      [other.apiKey, "/v1/conversations/conv-1/versions"],
    ]) {
      const res = await call("GET", path, { key });
      expect(res.status).toBe(404);
      expect(await errorCode(res)).toBe("not_found");
    }
    expect((await call("GET", "/v1/conversations/conv-1/versions")).status).toBe(401);
  });
});

describe("GET /v1/conversations/{id}/versions/{version}", () => {
  it("gives a lexical version's episodes: windows in each, the terms most their own, cache bytes, entries per layer and representative text", async () => {
    const { tenantId, apiKey } = await submitted(V1);
    await runnerCallback(
      jobStatus({
        id: `job-${V1}`,
        tenant: tenantId,
        conversation: "conv-1",
        version: V1,
        centroids: [
          [1, 0],
          [0, 1],
        ],
        routing: LEXICAL,
      }),
      testEnvOf(),
    );
    const { status, body } = await get(apiKey, `/v1/conversations/conv-1/versions/${V1}`);
    expect(status).toBe(200);
    expect(body).toMatchObject({
      version: V1,
      status: "succeeded",
      active: true,
      routing: "lexical",
      episodeCount: 2,
      contextTokens: 1234,
    });
    expect(body.episodes).toEqual([
      {
        id: 0,
        windows: 3,
        topTerms: ["pottery", "class", "teacher", "wheel"],
        cacheBytes: 1000,
        entries: 96,
        layerEntries: [64, 32],
        representative: "Ann: what episode 0 is about",
      },
      {
        id: 1,
        windows: 2,
        topTerms: ["marathon", "lisbon", "train", "class"],
        cacheBytes: 1000,
        entries: 96,
        layerEntries: [64, 32],
        representative: "Ann: what episode 1 is about",
      },
    ]);
  });

  it("counts windows without terms for window and vote versions; gives neither for centroid ones, nor cache bytes, entries or representative texts for versions stored before they were kept", async () => {
    const { tenantId, apiKey } = await submitted(V1, V2);
    const window = {
      rule: "window" as const,
      windowVectors: LEXICAL.windowVectors,
      windowEpisodes: [1, 1, 0, 1, 1],
    };
    await runnerCallback(
      jobStatus({
        id: `job-${V1}`,
        tenant: tenantId,
        conversation: "conv-1",
        version: V1,
        centroids: [
          [1, 0],
          [0, 1],
        ],
        routing: window,
      }),
      testEnvOf(),
    );
    expect((await get(apiKey, `/v1/conversations/conv-1/versions/${V1}`)).body.episodes).toEqual([
      {
        id: 0,
        windows: 1,
        topTerms: null,
        cacheBytes: 1000,
        entries: 96,
        layerEntries: [64, 32],
        representative: "Ann: what episode 0 is about",
      },
      {
        id: 1,
        windows: 4,
        topTerms: null,
        cacheBytes: 1000,
        entries: 96,
        layerEntries: [64, 32],
        representative: "Ann: what episode 1 is about",
      },
    ]);
    // Stored as the edge did before it kept each cache's bytes, routed by centroid.
    await completeVersion(
      env.DB,
      tenantId,
      "conv-1",
      {
        version: V2,
        episodes: [{ id: 7, centroid: [1, 0] }],
        embedder: { modelId: "m", dimension: 2 },
        manifestKey: "k",
        contextTokens: 9,
      },
      new Date().toISOString(),
    );
    expect((await get(apiKey, `/v1/conversations/conv-1/versions/${V2}`)).body).toMatchObject({
      active: true,
      routing: "centroid",
      episodes: [
        {
          id: 7,
          windows: null,
          topTerms: null,
          cacheBytes: null,
          entries: null,
          layerEntries: null,
          representative: null,
        },
      ],
    });
  });

  it("has no windows for a version two activations old (the edge keeps only the active one's and the one before)", async () => {
    const { tenantId, apiKey } = await submitted(V1, V2, V3);
    for (const v of [V1, V2, V3])
      await runnerCallback(
        jobStatus({
          id: `job-${v}`,
          tenant: tenantId,
          conversation: "conv-1",
          version: v,
          centroids: [
            [1, 0],
            [0, 1],
          ],
          routing: LEXICAL,
        }),
        testEnvOf(),
      );
    expect(
      (await get(apiKey, `/v1/conversations/conv-1/versions/${V2}`)).body.episodes,
    ).toMatchObject([{ windows: 3 }, { windows: 2 }]);
    expect((await get(apiKey, `/v1/conversations/conv-1/versions/${V1}`)).body).toMatchObject({
      active: false,
      episodeCount: 2,
      episodes: [
        { id: 0, windows: null, topTerms: null, cacheBytes: 1000 },
        { id: 1, windows: null, topTerms: null },
      ],
    });
  });

  it("has no episodes before the version succeeded; 404 for an unknown version, conversation, or another tenant's", async () => {
    const { apiKey } = await submitted(V1);
    expect((await get(apiKey, `/v1/conversations/conv-1/versions/${V1}`)).body).toMatchObject({
      version: V1,
      status: "submitted",
      episodes: null,
      episodeCount: null,
    });
    const other = await newTenant();
    for (const [key, path, message] of [
      [
        apiKey,
        `/v1/conversations/conv-1/versions/${V4}`,
        `no version ${V4} of conversation conv-1`,
      ],
      [apiKey, `/v1/conversations/conv-2/versions/${V1}`, "no conversation conv-2"],
      [other.apiKey, `/v1/conversations/conv-1/versions/${V1}`, "no conversation conv-1"],
    ]) {
      const res = await call("GET", path, { key });
      expect(res.status).toBe(404);
      expect(
        ((await res.json()) as { error: { code: string; message: string } }).error,
      ).toMatchObject({ code: "not_found", message });
    }
    const bad = await call("GET", "/v1/conversations/conv-1/versions/..", { key: apiKey });
    expect(bad.status).not.toBe(200);
  });
});

describe("topTermsByEpisode", () => {
  it("ranks an episode's terms by its windows holding them, weighted by rarity elsewhere, ties alphabetical", () => {
    expect(
      topTermsByEpisode(
        [0, 0, 1],
        [
          ["pottery", "class"],
          ["pottery", "teacher"],
          ["marathon", "class"],
        ],
        2,
        2,
      ),
    ).toEqual([
      ["pottery", "teacher"],
      ["marathon", "class"],
    ]);
    // A term repeated within a window counts once; an episode without windows has no terms.
    expect(topTermsByEpisode([0, 0], [["aaa", "aaa", "aaa", "bbb"], ["bbb"]], 2)).toEqual([
      ["bbb", "aaa"],
      [],
    ]);
    expect(topTermsByEpisode([], [], 1)).toEqual([[]]);
    // Terms of one or two characters are left out.
    expect(topTermsByEpisode([0], [["ll", "y", "bike"]], 1)).toEqual([["bike"]]);
  });
});

function testEnvOf(): Env {
  return {
    ...env,
    RUNNER_URLS: "http://runner-a.test",
    EDGE_PUBLIC_URL: "http://edge.test",
    RUNNER_TIMEOUT_MS: "2000",
  } as Env;
}

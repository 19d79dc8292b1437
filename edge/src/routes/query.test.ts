import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import {
  encodeWindowVectors,
  rendezvousKey,
  rendezvousOrder,
  type JobRouting,
} from "@epicache/shared";
import { RUNNERS, call, errorCode, newTenant, testEnv } from "../testing/helpers";
import { installFakeRunners, json, type RunnerRequest } from "../testing/fake-runner";
import { completeVersion } from "../db/versions";

const MINILM = "sentence-transformers/all-MiniLM-L6-v2";
const V1 = "v20260101T000000000Z-000001";
const V2 = "v20260102T000000000Z-000002";

afterEach(() => vi.restoreAllMocks());

/** A tenant whose conversation has `version` active with these centroids (episode ids 10, 11, 12…). */
async function withActiveVersion(
  centroids: number[][],
  modelId = MINILM,
  version = V1,
  tenant?: Awaited<ReturnType<typeof newTenant>>,
) {
  tenant ??= await newTenant();
  await call("POST", "/v1/conversations/conv-1/messages", {
    body: { messages: [{ id: "m1", speaker: "Ann", text: "Hi" }] },
    key: tenant.apiKey,
  });
  await activate(tenant.tenantId, version, centroids, modelId);
  return tenant;
}

async function activate(
  tenantId: string,
  version: string,
  centroids: number[][],
  modelId = MINILM,
  routing?: JobRouting,
) {
  const now = new Date().toISOString();
  await env.DB.prepare(
    "INSERT INTO versions (tenant_id, conversation_id, version, status, created_at, updated_at) VALUES (?, 'conv-1', ?, 'submitted', ?, ?)",
  )
    .bind(tenantId, version, now, now)
    .run();
  await completeVersion(
    env.DB,
    tenantId,
    "conv-1",
    {
      version,
      episodes: centroids.map((centroid, i) => ({ id: 10 + i, centroid })),
      embedder: { modelId, dimension: centroids[0].length },
      manifestKey: "k",
      contextTokens: 1,
      routing,
    },
    now,
  );
}

/** Runners that embed every question as `vector` and answer "answer from episode N". */
function runners(
  vector: number[],
  options: { down?: string[]; model?: string } = {},
): RunnerRequest[] {
  return installFakeRunners(({ runner, path, body }) => {
    if (options.down?.includes(runner)) throw new TypeError("connection refused");
    if (path === "/v1/embed")
      return json({ model: options.model ?? MINILM, dimension: vector.length, vectors: [vector] });
    if (path === "/v1/generate") {
      const b = body as {
        tenant: string;
        conversation: string;
        version: string;
        episode: number;
        stream: boolean;
      };
      const done = {
        answer: `answer from episode ${b.episode}`,
        tenant: b.tenant,
        conversation: b.conversation,
        version: b.version,
        episode: b.episode,
        tokens: 4,
        timings: { queuedMs: 0, loadMs: 1, generateMs: 2 },
      };
      if (!b.stream) return json(done);
      const events = `event: token\ndata: {"text":"answer"}\n\nevent: done\ndata: ${JSON.stringify(done)}\n\n`;
      return new Response(events, { headers: { "content-type": "text/event-stream" } });
    }
    return json({ error: { code: "not_found", message: path } }, 404);
  });
}

const ask = (key: string, body: unknown, environment?: Env) =>
  call("POST", "/v1/conversations/conv-1/query", { body, key, env: environment });

describe("POST /v1/conversations/{id}/query", () => {
  it("answers 409 no_active_version before a rebuild succeeded, and 404 for unknown conversations", async () => {
    const { apiKey } = await newTenant();
    expect(await errorCode(await ask(apiKey, { question: "Where?" }))).toBe("not_found");
    await call("POST", "/v1/conversations/conv-1/messages", {
      body: { messages: [{ id: "m1", speaker: "Ann", text: "Hi" }] },
      key: apiKey,
    });
    const res = await ask(apiKey, { question: "Where?" });
    expect(res.status).toBe(409);
    expect(await errorCode(res)).toBe("no_active_version");
  });

  it("routes a version stored without routing data to the episode with the highest centroid cosine, on the rendezvous-first runner for (tenant, conversation, episode)", async () => {
    // Centroids of different lengths: only their direction counts.
    const { apiKey, tenantId } = await withActiveVersion([
      [3, 0, 0],
      [0, 0.2, 0],
      [0, 0, 5],
    ]);
    const log = runners([0.3, 0.9, 0.2]);
    const res = await ask(apiKey, { question: "What did Ann research?", maxTokens: 16 });
    expect(res.status).toBe(200);
    // The routing: each episode's cosine with the question, the chosen one highest.
    const q = Math.hypot(0.3, 0.9, 0.2);
    expect(await res.json()).toEqual({
      answer: "answer from episode 11",
      episode: 11,
      version: V1,
      tokens: 4,
      routing: {
        rule: "centroid",
        scores: [
          { episode: 10, score: expect.closeTo(0.3 / q, 6) },
          { episode: 11, score: expect.closeTo(0.9 / q, 6) },
          { episode: 12, score: expect.closeTo(0.2 / q, 6) },
        ],
      },
    });
    expect(log.map((r) => r.path)).toEqual(["/v1/embed", "/v1/generate"]);
    expect(log[0].body).toEqual({ texts: ["What did Ann research?"] });
    expect(log[1].runner).toBe(rendezvousOrder(rendezvousKey(tenantId, "conv-1", 11), RUNNERS)[0]);
    expect(log[1].body).toEqual({
      tenant: tenantId,
      conversation: "conv-1",
      version: V1,
      episode: 11,
      question: "What did Ann research?",
      maxTokens: 16,
      stream: false,
    });
  });

  // Episode 10's centroid points along x, episode 11's along y. Episode 10 holds one window close to
  // the question q = [0.6, 0.8] (w1, cosine 1) and one far from it (w0, 0.6); episode 11 two windows
  // moderately close (w2 0.8, w3 0.90). By centroid: 11; by window: 10 (w1); by a vote of 3: 11 (w3, w2).
  const centroids = [
    [1, 0],
    [0, 1],
  ];
  const windows = {
    windowVectors: encodeWindowVectors([
      [1, 0],
      [0.6, 0.8],
      [0, 1],
      [0.2, 1],
    ]),
    windowEpisodes: [0, 0, 1, 1],
  };
  const q = [0.6, 0.8];

  it("routes by the episode of the nearest window when the version records window routing", async () => {
    const tenant = await withActiveVersion([[1, 0]]);
    await activate(tenant.tenantId, V2, centroids, MINILM, { rule: "window", ...windows });
    const log = runners(q);
    expect(await (await ask(tenant.apiKey, { question: "Where?" })).json()).toMatchObject({
      episode: 10,
      version: V2,
    });
    expect(log.find((r) => r.path === "/v1/generate")?.body).toMatchObject({
      episode: 10,
      version: V2,
    });
  });

  it("routes by a vote of the nearest windows when the version records vote routing", async () => {
    const tenant = await withActiveVersion([[1, 0]]);
    await activate(tenant.tenantId, V2, centroids, MINILM, { rule: "vote", k: 3, ...windows });
    runners(q);
    expect(await (await ask(tenant.apiKey, { question: "Where?" })).json()).toMatchObject({
      episode: 11,
      version: V2,
    });
    // k = 1 is the nearest window alone: episode 10.
    await activate(tenant.tenantId, "v20260103T000000000Z-000003", centroids, MINILM, {
      rule: "vote",
      k: 1,
      ...windows,
    });
    expect(await (await ask(tenant.apiKey, { question: "Where?" })).json()).toMatchObject({
      episode: 10,
    });
  });

  // The windows' terms: only w2 (episode 11) holds "pottery", only w0 (episode 10) "hiking" ("hik").
  const windowTerms = [
    "ann said hik trail",
    "ann said dog vet",
    "ann said pottery clas",
    "ann said dog park",
  ];

  it("routes by the episode of the window best matching the question's words when the version records lexical routing", async () => {
    const tenant = await withActiveVersion([[1, 0]]);
    await activate(tenant.tenantId, V2, centroids, MINILM, {
      rule: "lexical",
      ...windows,
      windowTerms,
    });
    const log = runners(q);
    // The nearest window is w1 (episode 10); the question's words are w2's.
    expect(
      await (await ask(tenant.apiKey, { question: "When does Ann's pottery class meet?" })).json(),
    ).toMatchObject({ episode: 11, version: V2 });
    expect(log.find((r) => r.path === "/v1/generate")?.body).toMatchObject({
      episode: 11,
      version: V2,
      question: "When does Ann's pottery class meet?",
    });
    // No terms at all ("who", "is" and "she" are stop words): the nearest window's episode.
    expect(await (await ask(tenant.apiKey, { question: "Who is she?" })).json()).toMatchObject({
      episode: 10,
    });
    // Words in every window still pick one: "ann" and "said" score alike everywhere, so the first window (episode 10).
    expect(
      await (await ask(tenant.apiKey, { question: "What has Ann said?" })).json(),
    ).toMatchObject({ episode: 10 });
  });

  it("keeps routing a version stored before lexical routing by its own rule, and a newer lexical one by its terms", async () => {
    const tenant = await withActiveVersion([[1, 0]]);
    // As completeVersion stored window versions before migration 0003: no terms.
    await activate(tenant.tenantId, V2, centroids, MINILM, { rule: "window", ...windows });
    expect(
      await env.DB.prepare("SELECT terms FROM version_windows WHERE tenant_id = ? AND version = ?")
        .bind(tenant.tenantId, V2)
        .first(),
    ).toEqual({ terms: null });
    runners(q);
    expect(
      await (await ask(tenant.apiKey, { question: "When is the pottery class?" })).json(),
    ).toMatchObject({ episode: 10, version: V2 });
    const V3 = "v20260103T000000000Z-000003";
    await activate(tenant.tenantId, V3, centroids, MINILM, {
      rule: "lexical",
      ...windows,
      windowTerms,
    });
    expect(
      await (await ask(tenant.apiKey, { question: "When is the pottery class?" })).json(),
    ).toMatchObject({ episode: 11, version: V3 });
  });

  it("routes by centroid when the version records centroid routing, or none (stored before routing rules)", async () => {
    const tenant = await withActiveVersion(centroids);
    runners(q);
    expect(await (await ask(tenant.apiKey, { question: "Where?" })).json()).toMatchObject({
      episode: 11,
      version: V1,
    });
    await activate(tenant.tenantId, V2, centroids, MINILM, { rule: "centroid" });
    expect(await (await ask(tenant.apiKey, { question: "Where?" })).json()).toMatchObject({
      episode: 11,
      version: V2,
    });
  });

  it("tries the next runner when the first fails, and answers 503 runner_unavailable when all do", async () => {
    const { apiKey, tenantId } = await withActiveVersion([
      [1, 0],
      [0, 1],
    ]);
    const order = rendezvousOrder(rendezvousKey(tenantId, "conv-1", 10), RUNNERS);
    const log = runners([1, 0], { down: [order[0]] });
    expect(await (await ask(apiKey, { question: "Where?" })).json()).toMatchObject({
      episode: 10,
      answer: "answer from episode 10",
    });
    expect(log.filter((r) => r.path === "/v1/generate").map((r) => r.runner)).toEqual([
      order[0],
      order[1],
    ]);
    vi.restoreAllMocks();
    runners([1, 0], { down: RUNNERS });
    const res = await ask(apiKey, { question: "Where?" });
    expect(res.status).toBe(503);
    expect(await errorCode(res)).toBe("runner_unavailable");
  });

  it("streams the runner's events after a meta event with the episode, version and routing; done carries the routing too", async () => {
    const { apiKey } = await withActiveVersion([
      [1, 0],
      [0, 1],
    ]);
    runners([0.1, 0.9]);
    const res = await ask(apiKey, { question: "Where?", stream: true });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/event-stream");
    const text = await res.text();
    const q = Math.hypot(0.1, 0.9);
    const routing = {
      rule: "centroid",
      scores: [
        { episode: 10, score: expect.closeTo(0.1 / q, 6) },
        { episode: 11, score: expect.closeTo(0.9 / q, 6) },
      ],
    };
    const events = text
      .trim()
      .split("\n\n")
      .map((block) => ({
        name: /^event: (\w+)/.exec(block)?.[1],
        data: JSON.parse(block.split("\ndata: ")[1]) as unknown,
      }));
    expect(events[0]).toEqual({ name: "meta", data: { episode: 11, version: V1, routing } });
    expect(events.slice(1, -1).map((e) => e.name)).toEqual(events.slice(1, -1).map(() => "token"));
    expect(text).toContain('event: token\ndata: {"text":"answer"}');
    expect(events.at(-1)).toEqual({
      name: "done",
      data: expect.objectContaining({
        answer: "answer from episode 11",
        episode: 11,
        version: V1,
        routing,
      }),
    });
  });

  it("embeds with Workers AI when the version's embedder is bge-small-en-v1.5 and AI is bound", async () => {
    const { apiKey } = await withActiveVersion(
      [
        [1, 0],
        [0, 1],
      ],
      "BAAI/bge-small-en-v1.5",
    );
    const log = runners([1, 0], { model: "BAAI/bge-small-en-v1.5" });
    const run = vi.fn(async (_model: string, _inputs: unknown) => ({
      shape: [1, 2],
      data: [[0.2, 0.8]],
    }));
    const res = await ask(
      apiKey,
      { question: "Where?" },
      testEnv({ AI: { run } as unknown as Ai }),
    );
    expect(await res.json()).toMatchObject({ episode: 11 });
    expect(run).toHaveBeenCalledWith("@cf/baai/bge-small-en-v1.5", { text: ["Where?"] });
    expect(log.map((r) => r.path)).toEqual(["/v1/generate"]);
    // Without the binding (local development), the runner embeds.
    expect(await (await ask(apiKey, { question: "Where?" })).json()).toMatchObject({ episode: 10 });
    expect(log.map((r) => r.path)).toEqual(["/v1/generate", "/v1/embed", "/v1/generate"]);
  });

  it("does not use Workers AI for a version built with another embedder, and refuses a runner embedding with a different model", async () => {
    const { apiKey } = await withActiveVersion([
      [1, 0],
      [0, 1],
    ]);
    runners([1, 0], { model: "BAAI/bge-small-en-v1.5" });
    const run = vi.fn();
    const res = await ask(
      apiKey,
      { question: "Where?" },
      testEnv({ AI: { run } as unknown as Ai }),
    );
    expect(res.status).toBe(502);
    expect(await errorCode(res)).toBe("runner_invalid");
    expect(run).not.toHaveBeenCalled();
  });

  it("uses a new active version's centroids as soon as it is active", async () => {
    const tenant = await withActiveVersion([
      [1, 0],
      [0, 1],
    ]);
    runners([1, 0]);
    expect(await (await ask(tenant.apiKey, { question: "Where?" })).json()).toMatchObject({
      episode: 10,
      version: V1,
    });
    await activate(tenant.tenantId, V2, [
      [0, 1],
      [1, 0],
    ]);
    expect(await (await ask(tenant.apiKey, { question: "Where?" })).json()).toMatchObject({
      episode: 11,
      version: V2,
    });
  });

  it("validates the question and keeps tenants apart", async () => {
    const a = await withActiveVersion([
      [1, 0],
      [0, 1],
    ]);
    const b = await newTenant();
    for (const body of [
      {},
      { question: "" },
      { question: "   " },
      { question: "x", maxTokens: 0 },
      { question: "x", extra: 1 },
    ]) {
      const res = await ask(a.apiKey, body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(await errorCode(res)).toBe("invalid_argument");
    }
    const other = await ask(b.apiKey, { question: "Where?" });
    expect(other.status).toBe(404);
    expect(await errorCode(other)).toBe("not_found");
  });
});

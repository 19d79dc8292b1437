import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import {
  decodeWindowVectors,
  encodeWindowVectors,
  PUBLIC_MESSAGES,
  signRequest,
} from "@epicache/shared";
import { RUNNER_SECRET, call, errorCode, newTenant } from "../testing/helpers";
import { installFakeRunners, json, jobStatus } from "../testing/fake-runner";
import { captureLogs } from "../testing/logs";
import {
  getManifest,
  getVersion,
  WINDOW_CHUNK_BYTES,
  WINDOW_TERMS_CHUNK_CHARS,
} from "../db/versions";
import { MAX_CALLBACK_BYTES } from "./runner-callback";

const PATH = "/v1/internal/rebuild-callback";
const OLD = "v20260101T000000000Z-000001";
const NEW = "v20260102T000000000Z-000002";

afterEach(() => vi.restoreAllMocks());

/** A tenant whose conversation has versions submitted to runner-a as job-<version>. */
async function submitted(...versions: string[]) {
  const tenant = await newTenant();
  await call("POST", "/v1/conversations/conv-1/messages", {
    body: { messages: [{ id: "m1", speaker: "Ann", text: "Hi" }] },
    key: tenant.apiKey,
  });
  const now = new Date().toISOString();
  for (const version of versions) {
    await env.DB.prepare(
      "INSERT INTO versions (tenant_id, conversation_id, version, status, runner_url, job_id, created_at, updated_at) VALUES (?, 'conv-1', ?, 'submitted', 'http://runner-a.test', ?, ?, ?)",
    )
      .bind(tenant.tenantId, version, `job-${version}`, now, now)
      .run();
  }
  return tenant;
}

async function signedCallback(
  body: unknown,
  options: {
    secret?: string;
    timestamp?: number;
    requestId?: string;
    headers?: Record<string, string>;
  } = {},
) {
  const raw = JSON.stringify(body);
  const headers =
    options.headers ??
    (await signRequest(options.secret ?? RUNNER_SECRET, {
      method: "POST",
      path: PATH,
      timestamp: options.timestamp ?? Math.floor(Date.now() / 1000),
      requestId: options.requestId ?? crypto.randomUUID(),
      body: raw,
    }));
  return { res: await call("POST", PATH, { rawBody: raw, headers }), headers };
}

describe("the runner's completion callback", () => {
  it("stores the centroids and activates the version; a replay of it is refused; a result without routing routes by centroid", async () => {
    const { tenantId, apiKey } = await submitted(NEW);
    const job = jobStatus({
      id: `job-${NEW}`,
      tenant: tenantId,
      conversation: "conv-1",
      version: NEW,
    });
    const { res, headers } = await signedCallback(job);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ version: NEW, status: "succeeded", activeVersion: NEW });
    expect(await getManifest(env.DB, tenantId, "conv-1", NEW)).toEqual({
      version: NEW,
      episodes: [
        { id: 0, centroid: [1, 0, 0], bytes: 1000 },
        { id: 1, centroid: [0, 1, 0], bytes: 1000 },
        { id: 2, centroid: [0, 0, 1], bytes: 1000 },
      ],
      embedder: { modelId: "sentence-transformers/all-MiniLM-L6-v2", dimension: 3 },
      routing: { rule: "centroid" },
    });
    expect(
      await (await call("GET", "/v1/conversations/conv-1", { key: apiKey })).json(),
    ).toMatchObject({
      activeVersion: NEW,
      rebuild: { version: NEW, status: "succeeded", progress: 100 },
    });
    const replay = await signedCallback(job, { headers });
    expect(replay.res.status).toBe(401);
    expect(await errorCode(replay.res)).toBe("unauthorized");
  });

  it("refuses unsigned, forged and stale callbacks", async () => {
    const { tenantId } = await submitted(NEW);
    const job = jobStatus({
      id: `job-${NEW}`,
      tenant: tenantId,
      conversation: "conv-1",
      version: NEW,
    });
    for (const attempt of [
      await call("POST", PATH, { body: job }),
      (await signedCallback(job, { secret: "not-the-secret" })).res,
      (await signedCallback(job, { timestamp: Math.floor(Date.now() / 1000) - 400 })).res,
    ]) {
      expect(attempt.status).toBe(401);
      expect(await errorCode(attempt)).toBe("unauthorized");
    }
    expect(await getVersion(env.DB, tenantId, "conv-1", NEW)).toMatchObject({
      status: "submitted",
    });
  });

  it("never moves the active version back: a late callback for an older version leaves the newer active", async () => {
    const { tenantId } = await submitted(OLD, NEW);
    await signedCallback(
      jobStatus({ id: `job-${NEW}`, tenant: tenantId, conversation: "conv-1", version: NEW }),
    );
    const { res } = await signedCallback(
      jobStatus({ id: `job-${OLD}`, tenant: tenantId, conversation: "conv-1", version: OLD }),
    );
    expect(await res.json()).toEqual({ version: OLD, status: "succeeded", activeVersion: NEW });
  });

  it("records a failed job and keeps the previous version active", async () => {
    const { tenantId } = await submitted(OLD, NEW);
    await signedCallback(
      jobStatus({ id: `job-${OLD}`, tenant: tenantId, conversation: "conv-1", version: OLD }),
    );
    const { res } = await signedCallback(
      jobStatus({
        id: `job-${NEW}`,
        tenant: tenantId,
        conversation: "conv-1",
        version: NEW,
        status: "failed",
      }),
    );
    expect(await res.json()).toEqual({ version: NEW, status: "failed", activeVersion: OLD });
    // The runner's own words ("bad transcript") are logged; the tenant reads the code's fixed text.
    expect(await getVersion(env.DB, tenantId, "conv-1", NEW)).toMatchObject({
      error: { code: "conversation_invalid", message: PUBLIC_MESSAGES.conversation_invalid },
    });
  });

  it("refuses a job of another tenant's conversation or another job id with 404, and a malformed result", async () => {
    const a = await submitted(NEW);
    const b = await newTenant();
    const wrongTenant = await signedCallback(
      jobStatus({ id: `job-${NEW}`, tenant: b.tenantId, conversation: "conv-1", version: NEW }),
    );
    expect(wrongTenant.res.status).toBe(404);
    const wrongJob = await signedCallback(
      jobStatus({ id: "job-other", tenant: a.tenantId, conversation: "conv-1", version: NEW }),
    );
    expect(wrongJob.res.status).toBe(404);
    const ragged = await signedCallback(
      jobStatus({
        id: `job-${NEW}`,
        tenant: a.tenantId,
        conversation: "conv-1",
        version: NEW,
        centroids: [
          [1, 0],
          [0, 1, 0],
        ],
      }),
    );
    expect(ragged.res.status).toBe(502);
    expect(await errorCode(ragged.res)).toBe("runner_invalid");
    expect(await getVersion(env.DB, a.tenantId, "conv-1", NEW)).toMatchObject({
      status: "submitted",
    });
  });

  it("polls the runner for a submitted job when the conversation is read (no callback needed)", async () => {
    const { tenantId, apiKey } = await submitted(NEW);
    let done = false;
    const log = installFakeRunners(({ path }) =>
      path === `/v1/jobs/job-${NEW}`
        ? json(
            jobStatus({
              id: `job-${NEW}`,
              tenant: tenantId,
              conversation: "conv-1",
              version: NEW,
              status: done ? "succeeded" : "running",
            }),
          )
        : json({ error: { code: "not_found", message: "no" } }, 404),
    );
    expect(
      await (await call("GET", "/v1/conversations/conv-1", { key: apiKey })).json(),
    ).toMatchObject({
      activeVersion: null,
      rebuild: { status: "submitted", stage: "prefill", progress: 40, etaSeconds: 12 },
    });
    done = true;
    expect(
      await (await call("GET", "/v1/conversations/conv-1", { key: apiKey })).json(),
    ).toMatchObject({ activeVersion: NEW, rebuild: { status: "succeeded" } });
    expect(log.map((r) => `${r.runner} ${r.method} ${r.path}`)).toEqual([
      `http://runner-a.test GET /v1/jobs/job-${NEW}`,
      `http://runner-a.test GET /v1/jobs/job-${NEW}`,
    ]);
  });

  it("stores a window or vote result's rule and window vectors, in rows of bounded size, from a callback larger than other requests may be", async () => {
    const { tenantId } = await submitted(OLD, NEW);
    // 3,000 windows of 384 dimensions: 1.5 MB of base64, over the 1 MiB other requests may carry,
    // and more than one row of window vectors.
    const dimension = 384;
    const vectors = Array.from({ length: 3000 }, (_, w) =>
      Array.from({ length: dimension }, (_, d) => Math.sin(w * 7 + d)),
    );
    const centroids = [0, 1, 2].map((e) =>
      Array.from({ length: dimension }, (_, d) => (d % 3 === e ? 1 : 0)),
    );
    const windowEpisodes = vectors.map((_, w) => w % 3);
    const routing = {
      rule: "vote" as const,
      k: 5,
      windowVectors: encodeWindowVectors(vectors),
      windowEpisodes,
    };
    const { res } = await signedCallback(
      jobStatus({
        id: `job-${NEW}`,
        tenant: tenantId,
        conversation: "conv-1",
        version: NEW,
        centroids,
        routing,
      }),
    );
    expect(res.status).toBe(200);
    const manifest = await getManifest(env.DB, tenantId, "conv-1", NEW);
    expect(manifest?.routing).toEqual({ rule: "vote", k: 5 });
    expect(manifest?.windows?.episodes).toEqual(windowEpisodes);
    // Every window, in order, as the runner quantised it.
    expect(manifest?.windows?.vectors.map((v) => Array.from(v))).toEqual(
      decodeWindowVectors(routing.windowVectors, dimension).map((v) => Array.from(v)),
    );
    const rows = await env.DB.prepare(
      "SELECT chunk, length(vectors) AS chars FROM version_windows WHERE tenant_id = ? AND version = ? ORDER BY chunk",
    )
      .bind(tenantId, NEW)
      .all<{ chunk: number; chars: number }>();
    expect(rows.results.map((r) => r.chunk)).toEqual([0, 1]);
    for (const r of rows.results)
      expect(r.chars).toBeLessThanOrEqual((WINDOW_CHUNK_BYTES * 4) / 3 + 4);

    // Its own bound still holds.
    const over = await call("POST", PATH, {
      rawBody: "x".repeat(MAX_CALLBACK_BYTES + 1),
      headers: { "content-type": "application/json" },
    });
    expect(over.status).toBe(413);
    expect(await errorCode(over)).toBe("payload_too_large");

    const window = {
      rule: "window" as const,
      windowVectors: encodeWindowVectors([
        [1, 0],
        [0, 1],
      ]),
      windowEpisodes: [1, 0],
    };
    await signedCallback(
      jobStatus({
        id: `job-${OLD}`,
        tenant: tenantId,
        conversation: "conv-1",
        version: OLD,
        centroids: [
          [1, 0],
          [0, 1],
        ],
        routing: window,
      }),
    );
    expect(await getManifest(env.DB, tenantId, "conv-1", OLD)).toMatchObject({
      routing: { rule: "window" },
      windows: { episodes: [1, 0] },
    });
  });

  it("stores a lexical result's window terms with its vectors, in rows of bounded size, and reads them back as term lists", async () => {
    const { tenantId } = await submitted(NEW);
    // 50 windows of 30,000 characters of terms each: 1.5 MB of terms, so more than one row of them,
    // while the vectors alone would fit one.
    const terms = Array.from({ length: 50 }, (_, w) =>
      Array.from({ length: 3000 }, (_, i) => `t${(w * 7 + i) % 1000}`.padEnd(9, "x")).join(" "),
    );
    terms[3] = "";
    const vectors = terms.map((_, w) => [Math.cos(w), Math.sin(w)]);
    const routing = {
      rule: "lexical" as const,
      windowVectors: encodeWindowVectors(vectors),
      windowEpisodes: terms.map((_, w) => w % 2),
      windowTerms: terms,
    };
    const { res } = await signedCallback(
      jobStatus({
        id: `job-${NEW}`,
        tenant: tenantId,
        conversation: "conv-1",
        version: NEW,
        centroids: [
          [1, 0],
          [0, 1],
        ],
        routing,
      }),
    );
    expect(res.status).toBe(200);
    const manifest = await getManifest(env.DB, tenantId, "conv-1", NEW);
    expect(manifest?.routing).toEqual({ rule: "lexical" });
    expect(manifest?.windows?.episodes).toEqual(routing.windowEpisodes);
    expect(manifest?.windows?.vectors).toHaveLength(50);
    expect(manifest?.windows?.terms).toEqual(terms.map((t) => (t === "" ? [] : t.split(" "))));
    const rows = await env.DB.prepare(
      "SELECT chunk, length(terms) AS chars FROM version_windows WHERE tenant_id = ? AND version = ? ORDER BY chunk",
    )
      .bind(tenantId, NEW)
      .all<{ chunk: number; chars: number }>();
    expect(rows.results.length).toBeGreaterThan(2);
    for (const r of rows.results) expect(r.chars).toBeLessThanOrEqual(WINDOW_TERMS_CHUNK_CHARS + 2);
  });

  it("refuses window vectors that do not fit the result with 502 runner_invalid, and leaves the version submitted", async () => {
    const { tenantId } = await submitted(NEW);
    const windowVectors = encodeWindowVectors([
      [1, 0],
      [0, 1],
      [1, 1],
    ]);
    const cases: Array<[unknown, string]> = [
      [
        { rule: "window", windowVectors, windowEpisodes: [0, 1] },
        "3 window vectors and 2 window episodes",
      ],
      [
        { rule: "window", windowVectors, windowEpisodes: [0, 1, 2] },
        "window 2 is in episode 2 of 2",
      ],
      [
        { rule: "window", windowVectors: "A!A=", windowEpisodes: [0] },
        "window vectors are not base64",
      ],
      [
        { rule: "window", windowVectors: encodeWindowVectors([[1, 0, 0]]), windowEpisodes: [0] },
        "window vectors hold 3 bytes, not a multiple of the dimension 2",
      ],
      [
        {
          rule: "lexical",
          windowVectors,
          windowEpisodes: [0, 1, 1],
          windowTerms: ["dog vet", "pottery"],
        },
        "3 window vectors and 2 windows' terms",
      ],
    ];
    for (const [routing, message] of cases) {
      const logs = captureLogs();
      const { res } = await signedCallback(
        jobStatus({
          id: `job-${NEW}`,
          tenant: tenantId,
          conversation: "conv-1",
          version: NEW,
          centroids: [
            [1, 0],
            [0, 1],
          ],
          routing: routing as never,
        }),
      );
      expect(res.status, message).toBe(502);
      // What is wrong is logged under the request id; the answer is the code's fixed text.
      const body = (await res.json()) as { error: { requestId: string } };
      expect(body).toEqual({
        error: {
          code: "runner_invalid",
          message: PUBLIC_MESSAGES.runner_invalid,
          requestId: res.headers.get("x-request-id"),
        },
      });
      expect(logs.of(body.error.requestId), message).toContain(message);
      vi.restoreAllMocks();
    }
    // Not a routing the runner API knows: the body itself is refused.
    const unknown = await signedCallback(
      jobStatus({
        id: `job-${NEW}`,
        tenant: tenantId,
        conversation: "conv-1",
        version: NEW,
        routing: { rule: "nearest" } as never,
      }),
    );
    expect(unknown.res.status).toBe(400);
    // Terms that lexicalTerms would not give (upper case, two spaces) would not meet a question's terms.
    for (const term of ["Dog", "dog  vet", " dog"]) {
      const routing = {
        rule: "lexical",
        windowVectors: encodeWindowVectors([[1, 0]]),
        windowEpisodes: [0],
        windowTerms: [term],
      };
      const res = (
        await signedCallback(
          jobStatus({
            id: `job-${NEW}`,
            tenant: tenantId,
            conversation: "conv-1",
            version: NEW,
            centroids: [
              [1, 0],
              [0, 1],
            ],
            routing: routing as never,
          }),
        )
      ).res;
      expect(res.status, term).toBe(400);
    }
    expect(await getVersion(env.DB, tenantId, "conv-1", NEW)).toMatchObject({
      status: "submitted",
    });
  });

  it("keeps window vectors for the active version and the one before it only", async () => {
    const versions = [1, 2, 3].map((n) => `v2026010${n}T000000000Z-00000${n}`);
    const { tenantId } = await submitted(...versions);
    const routing = {
      rule: "window" as const,
      windowVectors: encodeWindowVectors([
        [1, 0],
        [0, 1],
      ]),
      windowEpisodes: [0, 1],
    };
    const kept = async () =>
      (
        await env.DB.prepare(
          "SELECT DISTINCT version FROM version_windows WHERE tenant_id = ? ORDER BY version",
        )
          .bind(tenantId)
          .all<{ version: string }>()
      ).results.map((r) => r.version);
    for (const version of versions)
      await signedCallback(
        jobStatus({
          id: `job-${version}`,
          tenant: tenantId,
          conversation: "conv-1",
          version,
          centroids: [
            [1, 0],
            [0, 1],
          ],
          routing,
        }),
      );
    expect(await kept()).toEqual(versions.slice(1));
    // A version two activations old has lost them: a question that read it as active is told to ask again.
    await expect(getManifest(env.DB, tenantId, "conv-1", versions[0])).rejects.toMatchObject({
      code: "no_active_version",
    });
  });
});

/**
 * The runner on loopback, end to end: the real SmolLM2 and embedder, episode caches in the S3 test
 * server, signed requests over HTTP. Skips without the pulled models or the S3 server (CI requires
 * both).
 */
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import { CreateBucketCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  decodeWindowVectors,
  manifestKey,
  signRequest,
  type JobStatus,
  type TranscriptMessage,
} from "@epicache/shared";
import { REPO_ROOT } from "../paths";
import { S3ObjectStore } from "../store";
import { NEEDS_PULL, pulledModel } from "../testing";
import { startS3Server, type S3TestServer } from "../testing/s3-server";
import { loadRunnerConfig } from "./config";
import { startRunner, type RunningRunner } from "./serve";

const SECRET = "runner-test-secret-0123456789";
const messages = readFileSync(
  join(REPO_ROOT, "test", "fixtures", "conversation-excerpt.jsonl"),
  "utf8",
)
  .trim()
  .split("\n")
  .map((l) => JSON.parse(l) as TranscriptMessage);
const ready = pulledModel("chat") !== undefined && pulledModel("embedder") !== undefined;

let s3: S3TestServer | undefined;
let running: RunningRunner | undefined;
let objects: S3ObjectStore | undefined;

async function call(
  method: string,
  path: string,
  body?: unknown,
  opts: {
    secret?: string;
    timestamp?: number;
    headers?: Record<string, string>;
    raw?: string;
  } = {},
): Promise<Response> {
  const text = opts.raw ?? (body === undefined ? "" : JSON.stringify(body));
  const signed = await signRequest(opts.secret ?? SECRET, {
    method,
    path,
    timestamp: opts.timestamp ?? Math.floor(Date.now() / 1000),
    requestId: randomUUID(),
    body: text,
  });
  return fetch(`${running?.url}${path}`, {
    method,
    headers: { "content-type": "application/json", ...signed, ...opts.headers },
    body: method === "GET" ? undefined : text,
  });
}

async function waitForJob(id: string, timeoutMs = 600_000): Promise<JobStatus> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const job = (await (await call("GET", `/v1/jobs/${id}`)).json()) as JobStatus;
    if (job.status === "succeeded" || job.status === "failed") return job;
    if (Date.now() > deadline)
      throw new Error(`job ${id} still ${job.status} (${job.stage} ${job.percent}%)`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Reads an SSE response: the events in order, and when the first token arrived. */
async function readSse(
  res: Response,
  started: number,
): Promise<{ events: Array<{ event: string; data: unknown }>; firstTokenMs: number }> {
  const events: Array<{ event: string; data: unknown }> = [];
  let firstTokenMs = -1;
  let buffer = "";
  const decoder = new TextDecoder();
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(chunk, { stream: true });
    let cut: number;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const event = /^event: (.*)$/m.exec(block)?.[1] ?? "message";
      const data = JSON.parse(/^data: (.*)$/m.exec(block)?.[1] ?? "null") as unknown;
      if (event === "token" && firstTokenMs < 0) firstTokenMs = performance.now() - started;
      events.push({ event, data });
    }
  }
  return { events, firstTokenMs };
}

const rebuild = (version: string, config: Record<string, unknown> = {}) =>
  call("POST", "/v1/rebuild", {
    tenant: "acme",
    conversation: "maya-tom",
    version,
    messages,
    config,
  });

describe.skipIf(!ready)(`the runner service on loopback ${NEEDS_PULL}`, () => {
  beforeAll(async () => {
    s3 = await startS3Server();
    if (s3 === undefined) return;
    objects = new S3ObjectStore({ bucket: "runner", prefix: "store", client: s3.client });
    await objects.client.send(new CreateBucketCommand({ Bucket: "runner" }));
    const config = loadRunnerConfig({
      env: {
        EPICACHE_HOME: process.env.EPICACHE_HOME,
        AWS_ENDPOINT_URL: s3.endpoint,
        AWS_ACCESS_KEY_ID: "test",
        AWS_SECRET_ACCESS_KEY: "test",
        EPICACHE_S3_FORCE_PATH_STYLE: "1",
      },
      overrides: {
        host: "127.0.0.1",
        port: 0,
        secret: SECRET,
        store: "s3://runner/store",
        maxBodyBytes: 256 << 10,
        build: { method: "epicache", episodes: 2, budget: 64, block: 128, dtype: "f16" },
      },
    });
    // The runner's S3 client reads the standard AWS environment.
    Object.assign(process.env, {
      AWS_ENDPOINT_URL: s3.endpoint,
      AWS_ACCESS_KEY_ID: "test",
      AWS_SECRET_ACCESS_KEY: "test",
      EPICACHE_S3_FORCE_PATH_STYLE: "1",
    });
    running = await startRunner(config);
  }, 600_000);
  afterAll(async () => {
    await running?.close();
    await s3?.stop();
  });
  const test = (name: string, f: () => Promise<void>, timeout = 900_000) =>
    it(
      name,
      async (ctx) => {
        if (s3 === undefined) return ctx.skip("no S3 test server");
        await f();
      },
      timeout,
    );

  test("embeds texts into L2-normalised vectors", async () => {
    const res = await call("POST", "/v1/embed", {
      texts: ["Where did Maya move?", "pottery class"],
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { model: string; dimension: number; vectors: number[][] };
    expect(body.dimension).toBe(384);
    expect(body.vectors).toHaveLength(2);
    for (const v of body.vectors) expect(Math.hypot(...v)).toBeCloseTo(1, 4);
  });

  test("rebuilds a conversation into a manifest in S3, then answers from it as JSON and as a token stream", async () => {
    const accepted = await rebuild("v1");
    expect(accepted.status).toBe(202);
    const { id } = (await accepted.json()) as JobStatus;
    const job = await waitForJob(id);
    expect(job).toMatchObject({ status: "succeeded", percent: 100, error: null, version: "v1" });
    expect(job.result?.episodes).toHaveLength(2);
    expect(job.result?.active).toBe("v1");
    // What the console shows of each episode: its cache's entries, in all and per layer (SmolLM2's
    // 30), and its representative text (the transcript's lines).
    for (const e of job.result?.episodes ?? []) {
      expect(e.layerEntries).toHaveLength(30);
      expect(e.layerEntries?.reduce((a, b) => a + b, 0)).toBe(e.entries);
      expect(e.entries).toBeGreaterThan(0);
      expect(e.representative).toMatch(/^(Maya|Tom) said, "/m);
    }
    // The default routing, lexical: what the edge routes by, every window's vector, episode and terms.
    const routing = job.result?.routing;
    if (routing?.rule !== "lexical") throw new Error(`routing ${JSON.stringify(routing)}`);
    expect(decodeWindowVectors(routing.windowVectors, 384)).toHaveLength(
      routing.windowEpisodes.length,
    );
    expect(new Set(routing.windowEpisodes)).toEqual(new Set([0, 1]));
    expect(routing.windowTerms).toHaveLength(routing.windowEpisodes.length);
    // The first window: Maya's and Tom's first four lines.
    expect(routing.windowTerms[0].split(" ").slice(0, 6)).toEqual([
      "maya",
      "said",
      "hey",
      "tom",
      "finally",
      "sign",
    ]);
    expect(await objects?.head(manifestKey("acme", "maya-tom", "v1"))).not.toBeNull();

    const question = {
      tenant: "acme",
      conversation: "maya-tom",
      version: "v1",
      episode: 0,
      question: "What did Maya make for her mother?",
      maxTokens: 12,
    };
    const res = await call("POST", "/v1/generate", question);
    expect(res.status).toBe(200);
    const answer = (await res.json()) as {
      answer: string;
      episode: number;
      version: string;
      tokens: number;
    };
    expect(answer).toMatchObject({ episode: 0, version: "v1" });
    expect(answer.tokens).toBeGreaterThan(0);
    expect(answer.answer.length).toBeGreaterThan(0);

    const t0 = performance.now();
    const streamed = await call("POST", "/v1/generate", { ...question, stream: true });
    expect(streamed.headers.get("content-type")).toMatch(/text\/event-stream/);
    const { events } = await readSse(streamed, t0);
    const done = events.at(-1);
    expect(done?.event).toBe("done");
    const tokens = events
      .filter((e) => e.event === "token")
      .map((e) => (e.data as { text: string }).text);
    expect(tokens.length).toBe((done?.data as { tokens: number }).tokens);
    // The same greedy answer either way, from the same cache.
    expect(tokens.join("").trim()).toBe((done?.data as { answer: string }).answer);
    expect((done?.data as { answer: string }).answer).toBe(answer.answer);
  });

  test("counts those requests in its metrics", async () => {
    const res = await fetch(`${running?.url}/metrics`);
    const text = await res.text();
    expect(text).toMatch(
      /epicache_runner_http_requests_total\{route="\/v1\/generate",method="POST",status="200"\} 2/,
    );
    expect(text).toMatch(
      /epicache_runner_http_requests_total\{route="\/v1\/rebuild",method="POST",status="202"\} 1/,
    );
    expect(text).toMatch(/epicache_runner_rebuild_jobs_total\{status="succeeded"\} 1/);
    expect(text).toMatch(/epicache_runner_rebuild_stage_seconds_count\{stage="prefill"\} \d+/);
    expect(text).toMatch(/epicache_runner_episode_cache_misses 1\b/);
    expect(text).toMatch(/epicache_runner_episode_cache_hits 1\b/);
    expect(text).toMatch(/epicache_runner_generated_tokens_total [1-9]/);
    expect(text).toMatch(/epicache_runner_queue_depth 0/);
    expect(text).toMatch(/epicache_runner_process_resident_memory_bytes [1-9]/);
  });

  test("refuses unsigned, forged, stale and replayed requests with 401, and oversized bodies with 413", async () => {
    const body = JSON.stringify({ texts: ["hi"] });
    const codeOf = async (res: Response) => [
      res.status,
      ((await res.json()) as { error: { code: string } }).error.code,
    ];
    expect(await codeOf(await fetch(`${running?.url}/v1/embed`, { method: "POST", body }))).toEqual(
      [401, "unauthorized"],
    );
    expect(
      await codeOf(
        await call("POST", "/v1/embed", { texts: ["hi"] }, { secret: "not-the-secret-at-all" }),
      ),
    ).toEqual([401, "unauthorized"]);
    expect(
      await codeOf(
        await call(
          "POST",
          "/v1/embed",
          { texts: ["hi"] },
          { timestamp: Math.floor(Date.now() / 1000) - 600 },
        ),
      ),
    ).toEqual([401, "unauthorized"]);
    const headers = await signRequest(SECRET, {
      method: "POST",
      path: "/v1/embed",
      timestamp: Math.floor(Date.now() / 1000),
      requestId: randomUUID(),
      body,
    });
    const once = () =>
      fetch(`${running?.url}/v1/embed`, {
        method: "POST",
        headers: { ...headers, "content-type": "application/json" },
        body,
      });
    expect((await once()).status).toBe(200);
    const replay = await once();
    expect(await codeOf(replay)).toEqual([401, "unauthorized"]);
    // Over 256 KiB: refused before it is read whole, signed or not. On a connection of its own: the
    // server closes it after refusing, which a pooled connection would find out on its next request.
    const big = JSON.stringify({ texts: ["x".repeat(300 << 10)] });
    const bigHeaders = await signRequest(SECRET, {
      method: "POST",
      path: "/v1/embed",
      timestamp: Math.floor(Date.now() / 1000),
      requestId: randomUUID(),
      body: big,
    });
    const refused = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(
        `${running?.url}/v1/embed`,
        {
          method: "POST",
          agent: false,
          headers: {
            ...bigHeaders,
            "content-type": "application/json",
            "content-length": Buffer.byteLength(big),
          },
        },
        (res) => {
          let text = "";
          res.on("data", (d: Buffer) => (text += d.toString()));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
        },
      );
      req.on("error", reject);
      req.end(big);
    });
    expect([
      refused.status,
      (JSON.parse(refused.body) as { error: { code: string } }).error.code,
    ]).toEqual([413, "payload_too_large"]);
  });

  test("bad requests get 4xx with a code", async () => {
    const codeOf = async (res: Response) => [
      res.status,
      ((await res.json()) as { error: { code: string } }).error.code,
    ];
    expect(await codeOf(await call("POST", "/v1/embed", undefined, { raw: "{not json" }))).toEqual([
      400,
      "invalid_json",
    ]);
    expect(await codeOf(await call("POST", "/v1/embed", { texts: [] }))).toEqual([
      400,
      "invalid_argument",
    ]);
    expect(
      await codeOf(
        await call("POST", "/v1/rebuild", {
          tenant: "../x",
          conversation: "c",
          version: "v",
          messages,
        }),
      ),
    ).toEqual([400, "invalid_argument"]);
    expect(await codeOf(await call("GET", "/v1/jobs/no-such-job"))).toEqual([404, "not_found"]);
    expect(
      await codeOf(
        await call("POST", "/v1/generate", {
          tenant: "acme",
          conversation: "maya-tom",
          version: "v9",
          episode: 0,
          question: "hi?",
        }),
      ),
    ).toEqual([404, "store_not_found"]);
    expect(
      await codeOf(
        await call("POST", "/v1/generate", {
          tenant: "acme",
          conversation: "maya-tom",
          version: "v1",
          episode: 7,
          question: "hi?",
        }),
      ),
    ).toEqual([400, "invalid_argument"]);
    expect(await codeOf(await call("GET", "/v1/nothing"))).toEqual([404, "not_found"]);
  });

  test("updates a version with the messages after it, and refuses a base that ends elsewhere", async () => {
    const post = (version: string, body: Record<string, unknown>) =>
      call("POST", "/v1/rebuild", {
        tenant: "acme",
        conversation: "grows",
        version,
        config: {},
        ...body,
      });
    const first = await waitForJob(
      ((await (await post("u1", { messages: messages.slice(0, 18) })).json()) as JobStatus).id,
    );
    expect(first.result).toMatchObject({ kind: "full", lastMessageId: messages[17].id });
    const next = await waitForJob(
      (
        (await (
          await post("u2", {
            base: { version: "u1", lastMessageId: messages[17].id },
            messages: messages.slice(18),
          })
        ).json()) as JobStatus
      ).id,
    );
    expect(next).toMatchObject({
      status: "succeeded",
      result: {
        kind: "incremental",
        baseVersion: "u1",
        lastMessageId: messages[29].id,
        active: "u2",
      },
    });
    const m = JSON.parse(
      new TextDecoder().decode((await objects?.get(manifestKey("acme", "grows", "u2")))?.bytes),
    ) as { update: { turns: number }; contextTokens: number };
    expect(m.update.turns).toBe(30);
    // The sender thinks u2 ends elsewhere: nothing is built, and it is told to send everything.
    const stale = await waitForJob(
      (
        (await (
          await post("u3", {
            base: { version: "u2", lastMessageId: messages[17].id },
            messages: messages.slice(18, 20),
          })
        ).json()) as JobStatus
      ).id,
    );
    expect(stale).toMatchObject({ status: "failed", error: { code: "base_unusable" } });
    expect(await objects?.head(manifestKey("acme", "grows", "u3"))).toBeNull();
    // Another routing rule than the base's: only a full build gives the manifest what that rule needs.
    const rerouted = await waitForJob(
      (
        (await (
          await post("u4", {
            config: { routing: "centroid" },
            base: { version: "u1", lastMessageId: messages[17].id },
            messages: messages.slice(18, 20),
          })
        ).json()) as JobStatus
      ).id,
    );
    expect(rerouted).toMatchObject({
      status: "failed",
      error: { code: "base_unusable", message: expect.stringContaining("routing rule") },
    });
  });

  test("a failed rebuild publishes nothing and the previous version stays active", async () => {
    const { id } = (await (await rebuild("v-fail", { maxContext: 64 })).json()) as JobStatus;
    const job = await waitForJob(id);
    expect(job.status).toBe("failed");
    expect(job.error?.code).toBe("invalid_argument");
    expect(await objects?.head(manifestKey("acme", "maya-tom", "v-fail"))).toBeNull();
    const pointer = JSON.parse(
      new TextDecoder().decode(
        (await objects?.get("tenants/acme/conversations/maya-tom/active.json"))?.bytes,
      ),
    ) as { version: string };
    expect(pointer.version).toBe("v1");
  });

  test("while a rebuild runs, a question on another version starts answering within a bounded time", async () => {
    const t0 = performance.now();
    const { id } = (await (await rebuild("v2", { episodes: 3, budget: 96 })).json()) as JobStatus;
    // Let the build reach its prefill.
    for (;;) {
      const job = (await (await call("GET", `/v1/jobs/${id}`)).json()) as JobStatus;
      if (job.stage === "prefill" || (job.status !== "queued" && job.status !== "running")) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const asked = performance.now();
    const res = await call("POST", "/v1/generate", {
      tenant: "acme",
      conversation: "maya-tom",
      version: "v1",
      episode: 1,
      question: "Where is Maya's new job?",
      maxTokens: 8,
      stream: true,
    });
    const { events, firstTokenMs } = await readSse(res, asked);
    const during = (await (await call("GET", `/v1/jobs/${id}`)).json()) as JobStatus;
    const job = await waitForJob(id);
    const buildMs = performance.now() - t0;
    expect(events.at(-1)?.event).toBe("done");
    expect(job.status).toBe("succeeded");
    // The question did not wait for the build: the build was still running when it was answered.
    expect(during.status).toBe("running");
    expect(firstTokenMs).toBeLessThan(buildMs / 2);
    expect(firstTokenMs).toBeLessThan(30_000);
    console.log(
      `first token ${firstTokenMs.toFixed(0)} ms after asking, during a ${(buildMs / 1000).toFixed(1)} s rebuild`,
    );
  });
});

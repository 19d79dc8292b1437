/**
 * `npm run bench:load`: a bounded load test on loopback with autocannon. Prints and writes
 * bench/results/load.json: p50/p95/p99 latency and throughput of
 *   1. message appends (one new message per request) and questions to a warm episode against the edge
 *      alone (`wrangler dev`, local D1), its runner replaced by a real HTTP server that answers at
 *      once (tools/instant-runner.ts), so the figures are the edge's own;
 *   2. questions to a warm episode end to end: the edge and the real runner with SmolLM2.
 *
 *   npm run bench:load -- [--duration 15] [--connections 8] [--e2e-duration 30] [--e2e-connections 2] [--skip-e2e]
 */
import { randomBytes, randomUUID } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import autocannon from "autocannon";
import { signWebhook } from "@epicache/shared";
import { pullDefaults } from "../gpu-runner/src/model-registry";
import { REPO_ROOT } from "../gpu-runner/src/paths";
import { loadRunnerConfig, startRunner } from "../gpu-runner/src/server";
import { startEdgeDev } from "./stack";
import { freePort } from "../gpu-runner/src/testing/free-port";
import { startInstantRunner } from "./instant-runner";

const { values } = parseArgs({
  options: {
    duration: { type: "string", default: "15" },
    connections: { type: "string", default: "8" },
    "e2e-duration": { type: "string", default: "30" },
    "e2e-connections": { type: "string", default: "2" },
    "skip-e2e": { type: "boolean", default: false },
  },
});
const config = {
  durationSeconds: Number(values.duration),
  connections: Number(values.connections),
  e2eDurationSeconds: Number(values["e2e-duration"]),
  e2eConnections: Number(values["e2e-connections"]),
};
const messages = readFileSync(
  join(REPO_ROOT, "test", "fixtures", "conversation-excerpt.jsonl"),
  "utf8",
)
  .trim()
  .split("\n")
  .map((l) => JSON.parse(l) as Record<string, unknown>);

interface Measured {
  requests: number;
  non2xx: number;
  errors: number;
  throughputPerSecond: number;
  latencyMs: { p50: number; p95: number; p99: number; max: number };
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

/** Runs autocannon and measures every response's latency itself (autocannon has no p95). */
async function load(opts: autocannon.Options): Promise<Measured> {
  const times: number[] = [];
  let non2xx = 0;
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(opts, (err, r) => (err ? reject(err) : resolve(r)));
    instance.on("response", (_client, status, _bytes, ms) => {
      times.push(ms);
      if (status < 200 || status >= 300) non2xx++;
    });
  });
  times.sort((a, b) => a - b);
  return {
    requests: times.length,
    non2xx,
    errors: result.errors + result.timeouts,
    throughputPerSecond: times.length / (opts.duration as number),
    latencyMs: {
      p50: percentile(times, 50),
      p95: percentile(times, 95),
      p99: percentile(times, 99),
      max: times[times.length - 1] ?? NaN,
    },
  };
}

/** A tenant with limits that do not throttle the benchmark, a conversation, and an active version. */
async function prepare(
  edge: string,
  admin: string,
  conversation: string,
): Promise<{ key: string }> {
  const created = await fetch(`${edge}/v1/tenants`, {
    method: "POST",
    headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
    body: JSON.stringify({
      name: "load",
      limits: {
        requestsPerMinute: 1_000_000_000,
        maxMessagesPerConversation: 10_000_000,
        maxConversations: 1_000_000,
      },
    }),
  });
  const { tenantId, apiKey, webhookSecret } = (await created.json()) as {
    tenantId: string;
    apiKey: string;
    webhookSecret: string;
  };
  const auth = { authorization: `Bearer ${apiKey}`, "content-type": "application/json" };
  await fetch(`${edge}/v1/conversations/${conversation}/messages`, {
    method: "POST",
    headers: auth,
    body: JSON.stringify({ messages }),
  });
  const body = JSON.stringify({ conversationId: conversation });
  const hook = await fetch(`${edge}/v1/webhooks/${tenantId}/rebuild`, {
    method: "POST",
    headers: {
      ...(await signWebhook(webhookSecret, {
        id: `msg_${randomUUID()}`,
        timestamp: Math.floor(Date.now() / 1000),
        body,
      })),
      "content-type": "application/json",
    },
    body,
  });
  const { version } = (await hook.json()) as { version: string };
  const deadline = Date.now() + 900_000;
  for (;;) {
    const state = (await (
      await fetch(`${edge}/v1/conversations/${conversation}`, { headers: auth })
    ).json()) as {
      activeVersion: string | null;
      rebuild: { status: string; error: unknown } | null;
    };
    if (state.activeVersion === version) break;
    if (state.rebuild?.status === "failed")
      throw new Error(`the rebuild failed: ${JSON.stringify(state.rebuild.error)}`);
    if (Date.now() > deadline) throw new Error("the rebuild did not finish in 15 minutes");
    await new Promise((r) => setTimeout(r, 500));
  }
  return { key: apiKey };
}

function questionLoad(
  edge: string,
  key: string,
  conversation: string,
  duration: number,
  connections: number,
): Promise<Measured> {
  return load({
    url: `${edge}/v1/conversations/${conversation}/query`,
    method: "POST",
    duration,
    connections,
    timeout: 120,
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify({ question: "What class did Maya sign up for?", maxTokens: 16 }),
  });
}

const work = mkdtempSync(join(tmpdir(), "epicache-bench-load-"));
const admin = `adm_${randomBytes(16).toString("hex")}`;
const results: Record<string, Measured> = {};
try {
  // ── 1. the edge alone ──
  const secret = randomBytes(32).toString("hex");
  const instant = await startInstantRunner(secret);
  const edge = await startEdgeDev({
    runnerUrl: instant.url,
    secret,
    adminToken: admin,
    port: await freePort(),
    stateDir: join(work, "edge-alone"),
  });
  try {
    const { key } = await prepare(edge.url, admin, "load");
    let n = 0;
    results.edgeAppends = await load({
      url: `${edge.url}/v1/conversations/appends/messages`,
      method: "POST",
      duration: config.durationSeconds,
      connections: config.connections,
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      requests: [
        {
          setupRequest: (req) => ({
            ...req,
            body: JSON.stringify({
              messages: [{ id: `m${++n}`, speaker: "Ann", text: `message ${n} of the load test` }],
            }),
          }),
        },
      ],
    });
    await questionLoad(edge.url, key, "load", 2, 1); // warm the edge's manifest cache
    results.edgeQuestions = await questionLoad(
      edge.url,
      key,
      "load",
      config.durationSeconds,
      config.connections,
    );
  } finally {
    await edge.close();
    await instant.close();
  }

  // ── 2. end to end with SmolLM2 ──
  if (!values["skip-e2e"]) {
    pullDefaults();
    const runnerConfig = loadRunnerConfig({
      overrides: {
        port: await freePort(),
        store: join(work, "store"),
        secret: randomBytes(32).toString("hex"),
        build: { method: "epicache", episodes: 4, budget: 256, block: 256, dtype: "f16" },
      },
    });
    const runner = await startRunner(runnerConfig);
    const stack = await startEdgeDev({
      runnerUrl: runner.url,
      secret: runnerConfig.secret,
      adminToken: admin,
      port: await freePort(),
      stateDir: join(work, "edge-e2e"),
    });
    try {
      const { key } = await prepare(stack.url, admin, "load");
      await questionLoad(stack.url, key, "load", 3, 1); // the episode is loaded: warm
      results.endToEndQuestions = await questionLoad(
        stack.url,
        key,
        "load",
        config.e2eDurationSeconds,
        config.e2eConnections,
      );
    } finally {
      await stack.close();
      await runner.close();
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}

const out = {
  measuredAt: new Date().toISOString(),
  machine: {
    cpus: cpus().length,
    cpu: cpus()[0]?.model,
    memoryBytes: totalmem(),
    node: process.version,
  },
  config,
  results,
};
const row = (name: string, m: Measured | undefined) =>
  m === undefined
    ? ""
    : `${name.padEnd(34)} ${m.throughputPerSecond.toFixed(1).padStart(8)} req/s   p50 ${m.latencyMs.p50.toFixed(0).padStart(5)} ms   p95 ${m.latencyMs.p95.toFixed(0).padStart(5)} ms   p99 ${m.latencyMs.p99.toFixed(0).padStart(5)} ms   ${m.requests} requests, ${m.non2xx} non-2xx, ${m.errors} errors`;
console.log(row(`edge alone: appends (${config.connections} conn.)`, results.edgeAppends));
console.log(row(`edge alone: questions (${config.connections} conn.)`, results.edgeQuestions));
console.log(
  row(`end to end: questions (${config.e2eConnections} conn.)`, results.endToEndQuestions),
);
const dir = join(REPO_ROOT, "bench", "results");
mkdirSync(dir, { recursive: true });
writeFileSync(join(dir, "load.json"), `${JSON.stringify(out, null, 1)}\n`);
console.log(`wrote ${join(dir, "load.json")}`);

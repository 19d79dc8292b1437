/**
 * The runner killed mid-rebuild: a real `epicache serve` child process on a filesystem store publishes
 * v1, starts v2 and is SIGKILLed during v2's prefill (after its first episode's blob went up). The
 * pointer still names v1, v2 has no manifest, every manifest names only blobs that exist, and a new
 * runner on the same store answers from v1. Skips without the pulled models (CI requires them).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { manifestKey, signRequest, type JobStatus, type TranscriptMessage } from "@epicache/shared";
import { REPO_ROOT } from "../paths";
import { FsObjectStore } from "../store";
import { NEEDS_PULL, pulledModel } from "../testing";
import { surveyConversation } from "../testing/store-invariants";

const SECRET = "runner-crash-test-secret-0123456789";
const messages = readFileSync(
  join(REPO_ROOT, "test", "fixtures", "conversation-excerpt.jsonl"),
  "utf8",
)
  .trim()
  .split("\n")
  .map((l) => JSON.parse(l) as TranscriptMessage);
const ready = pulledModel("chat") !== undefined && pulledModel("embedder") !== undefined;

interface Child {
  process: ChildProcess;
  url: string;
  stderr: () => string;
}

const children: ChildProcess[] = [];

/** `epicache serve` on a free loopback port; resolves once it prints where it listens. */
async function serve(store: string, config: string): Promise<Child> {
  const child = spawn(
    process.execPath,
    [
      join(REPO_ROOT, "gpu-runner", "bin", "epicache.mjs"),
      "serve",
      "--port",
      "0",
      "--host",
      "127.0.0.1",
      "--config",
      config,
    ],
    {
      env: { ...process.env, EPICACHE_STORE: store, EPICACHE_RUNNER_SECRET: SECRET },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  children.push(child);
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => (stderr = (stderr + d.toString()).slice(-8000)));
  const url = await new Promise<string>((resolve, reject) => {
    let out = "";
    child.stdout?.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]);
    });
    child.once("exit", (code) =>
      reject(new Error(`the runner exited (${code}) before listening: ${stderr}`)),
    );
  });
  return { process: child, url, stderr: () => stderr };
}

async function call(child: Child, method: string, path: string, body?: unknown): Promise<Response> {
  const text = body === undefined ? "" : JSON.stringify(body);
  const headers = await signRequest(SECRET, {
    method,
    path,
    timestamp: Math.floor(Date.now() / 1000),
    requestId: randomUUID(),
    body: text,
  });
  return fetch(`${child.url}${path}`, {
    method,
    headers: { ...headers, "content-type": "application/json" },
    body: method === "GET" ? undefined : text,
  });
}

async function job(child: Child, id: string): Promise<JobStatus> {
  return (await (await call(child, "GET", `/v1/jobs/${id}`)).json()) as JobStatus;
}

const rebuild = async (child: Child, version: string): Promise<string> => {
  const res = await call(child, "POST", "/v1/rebuild", {
    tenant: "acme",
    conversation: "maya-tom",
    version,
    messages,
  });
  expect(res.status).toBe(202);
  return ((await res.json()) as JobStatus).id;
};

describe.skipIf(!ready)(`the runner killed mid-rebuild ${NEEDS_PULL}`, () => {
  const dir = mkdtempSync(join(tmpdir(), "epicache-crash-"));
  afterAll(() => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });

  it("keeps v1 active and whole, publishes nothing of v2, and a new runner answers from v1", async () => {
    const store = join(dir, "store");
    const config = join(dir, "runner.json");
    writeFileSync(config, JSON.stringify({ build: { episodes: 2, budget: 64, block: 128 } }));
    const first = await serve(store, config);

    const v1 = await rebuild(first, "v1");
    for (let s = await job(first, v1); ; s = await job(first, v1)) {
      if (s.status === "failed") throw new Error(`v1 failed: ${JSON.stringify(s.error)}`);
      if (s.status === "succeeded") break;
      await new Promise((r) => setTimeout(r, 200));
    }

    // v2: killed in the prefill of its second episode, once the first one's blob is written.
    const v2 = await rebuild(first, "v2");
    let seen: JobStatus;
    for (
      seen = await job(first, v2);
      !(seen.stage === "prefill" && seen.percent >= 50);
      seen = await job(first, v2)
    ) {
      if ((seen.status !== "queued" && seen.status !== "running") || seen.stage === "publish")
        throw new Error(`v2 got past its prefill before the kill: ${JSON.stringify(seen)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    first.process.kill("SIGKILL");
    await new Promise((r) => first.process.once("exit", r));
    expect(first.process.signalCode).toBe("SIGKILL");

    const objects = new FsObjectStore(store);
    const survey = await surveyConversation(objects, "acme", "maya-tom");
    expect(survey.problems).toEqual([]);
    expect(survey.active).toBe("v1");
    expect(survey.manifests).toEqual(["v1"]);
    expect(await objects.head(manifestKey("acme", "maya-tom", "v2"))).toBeNull();
    expect(survey.unpublished).toEqual(["v2"]); // its first episode's blob, named by no manifest

    const second = await serve(store, config);
    const res = await call(second, "POST", "/v1/generate", {
      tenant: "acme",
      conversation: "maya-tom",
      version: "v1",
      episode: 1,
      question: "What did Maya make for her mother?",
      maxTokens: 8,
    });
    expect(res.status).toBe(200);
    const answer = (await res.json()) as { answer: string; tokens: number; version: string };
    expect(answer.version).toBe("v1");
    expect(answer.tokens).toBeGreaterThan(0);
    second.process.kill("SIGTERM");
    await new Promise((r) => second.process.once("exit", r));
  }, 300_000);
});

/**
 * What the runner answers when it fails inside, on a real HTTP server on loopback: a real Runner
 * whose object store, embedder and model throw errors carrying what no client should see (an
 * internal URL, an exception's text and stack). Every such failure is 500 `internal` with the
 * code's fixed text and the request id (the `x-request-id` header's); the exception is in the log
 * under that id. A client's own mistakes keep their specific messages.
 */
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { serve, type ServerType } from "@hono/node-server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PUBLIC_MESSAGES, signRequest, type JobStatus } from "@epicache/shared";
import type { OnnxEmbedder } from "../embedder";
import { EpisodeStore } from "../episodes";
import type { ChatModel } from "../runtime";
import type { ObjectStore } from "../store";
import { runnerApp } from "./app";
import { loadRunnerConfig } from "./config";
import { Runner } from "./runner";

const SECRET = "runner-errors-secret-0123456789";
/** What the failures carry: none of it may reach a response. */
const INTERNAL_URL = "http://10.9.8.7:9000/epicache-store";
const LEAK = `ECONNREFUSED ${INTERNAL_URL}: socket hang up`;
const failure = () => {
  const e = new Error(LEAK);
  e.stack = `Error: ${LEAK}\n    at S3Client.send (/srv/epicache/node_modules/@aws-sdk/client-s3/dist/index.js:42:7)`;
  return e;
};

/** An object store whose every call fails as an unreachable S3 endpoint would. */
const failingStore: ObjectStore = {
  location: "s3://epicache-store/prefix",
  put: async () => {
    throw failure();
  },
  get: async () => {
    throw failure();
  },
  getStream: async () => {
    throw failure();
  },
  head: async () => {
    throw failure();
  },
  list: () => ({
    [Symbol.asyncIterator]: () => ({
      next: async () => {
        throw failure();
      },
    }),
  }),
  delete: async () => {
    throw failure();
  },
};
/** An embedder whose session fails; a model that fails at its first use. */
const embedder = {
  modelId: "sentence-transformers/all-MiniLM-L6-v2",
  dimension: 384,
  embed: async () => {
    throw failure();
  },
  release: async () => undefined,
} as unknown as OnnxEmbedder;
const model = new Proxy(
  {},
  {
    get: (_, key) => {
      if (key === "fingerprint") return "0123456789abcdef";
      if (key === "then") return undefined;
      throw failure();
    },
  },
) as ChatModel;

const logs: string[] = [];
const dir = mkdtempSync(join(tmpdir(), "epicache-errors-"));
let server: ServerType;
let url = "";

beforeAll(async () => {
  const config = loadRunnerConfig({
    env: { EPICACHE_HOME: dir },
    overrides: { host: "127.0.0.1", port: 0, secret: SECRET, store: join(dir, "store") },
  });
  const runner = new Runner(config, model, embedder, new EpisodeStore(failingStore), (line) =>
    logs.push(line),
  );
  const app = runnerApp(runner, { log: (line) => logs.push(line) });
  server = await new Promise<ServerType>((resolve) => {
    const s = serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0 }, () => resolve(s));
  });
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  rmSync(dir, { recursive: true, force: true });
});

async function call(
  method: "GET" | "POST",
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<Response> {
  const text = body === undefined ? "" : JSON.stringify(body);
  const signed = await signRequest(SECRET, {
    method,
    path,
    timestamp: Math.floor(Date.now() / 1000),
    requestId: randomUUID(),
    body: text,
  });
  return fetch(`${url}${path}`, {
    method,
    headers: { "content-type": "application/json", ...signed, ...headers },
    body: method === "GET" ? undefined : text,
  });
}

/** The body is `{error: {code, message, requestId}}` as expected, the id the header's, nothing internal in it; returns the id. */
function expectOpaque(res: Response, text: string, code: string, message: string): string {
  const body = JSON.parse(text) as { error: { code: string; message: string; requestId: string } };
  expect(body).toEqual({ error: { code, message, requestId: res.headers.get("x-request-id") } });
  expect(body.error.requestId).toMatch(/^[A-Za-z0-9._:-]{1,128}$/);
  for (const secret of [
    INTERNAL_URL,
    "10.9.8.7",
    "ECONNREFUSED",
    "socket hang up",
    "/srv/epicache",
    "S3Client",
  ])
    expect(text).not.toContain(secret);
  return body.error.requestId;
}

const logOf = (requestId: string) => logs.filter((l) => l.includes(requestId)).join("\n");
const question = {
  tenant: "acme",
  conversation: "c",
  version: "v1",
  episode: 0,
  question: "Where?",
  maxTokens: 4,
};

describe("the runner's failures inside", () => {
  it("embedding: 500 internal with the fixed text and the request id; the exception logged under it", async () => {
    const res = await call("POST", "/v1/embed", { texts: ["hi"] });
    expect(res.status).toBe(500);
    const id = expectOpaque(res, await res.text(), "internal", PUBLIC_MESSAGES.internal);
    expect(logOf(id)).toContain(LEAK);
    expect(logOf(id)).toContain("S3Client.send");
  });

  it("answering (JSON): the store's failure is 500 internal, logged under the edge's request id when it sends one", async () => {
    const res = await call("POST", "/v1/generate", question, { "x-request-id": "edge-req-42" });
    expect(res.status).toBe(500);
    expect(expectOpaque(res, await res.text(), "internal", PUBLIC_MESSAGES.internal)).toBe(
      "edge-req-42",
    );
    expect(logOf("edge-req-42")).toContain(LEAK);
  });

  it("answering (streamed): the failure is an `error` event of the same body", async () => {
    const res = await call("POST", "/v1/generate", { ...question, stream: true });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const text = await res.text();
    const data = /^event: error\ndata: (.*)$/m.exec(text)?.[1];
    expect(data).toBeDefined();
    const id = expectOpaque(res, data as string, "internal", PUBLIC_MESSAGES.internal);
    expect(text).not.toContain("10.9.8.7");
    expect(logOf(id)).toContain(LEAK);
  });

  it("a rebuild job that throws reports `internal` with the fixed text; the exception is in the log", async () => {
    const res = await call("POST", "/v1/rebuild", {
      tenant: "acme",
      conversation: "c",
      version: "v1",
      messages: [
        { id: "m1", speaker: "Ann", text: "Hi" },
        { id: "m2", speaker: "Bob", text: "Yo" },
      ],
      config: {},
    });
    expect(res.status).toBe(202);
    const { id } = (await res.json()) as JobStatus;
    let job: JobStatus;
    for (;;) {
      job = (await (await call("GET", `/v1/jobs/${id}`)).json()) as JobStatus;
      if (job.status === "failed" || job.status === "succeeded") break;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(job).toMatchObject({
      status: "failed",
      error: { code: "internal", message: PUBLIC_MESSAGES.internal },
    });
    expect(JSON.stringify(job)).not.toContain("10.9.8.7");
    expect(logs.filter((l) => l.includes(id)).join("\n")).toContain(LEAK);
  });

  it("keeps the specific messages of a client's own mistakes, with the request id", async () => {
    const bad = await call("POST", "/v1/embed", { texts: "not a list" });
    expect(bad.status).toBe(400);
    const body = (await bad.json()) as {
      error: { code: string; message: string; requestId: string };
    };
    expect(body.error).toMatchObject({
      code: "invalid_argument",
      message: expect.stringContaining("texts"),
    });
    expect(body.error.requestId).toBe(bad.headers.get("x-request-id"));
    const unsigned = await fetch(`${url}/v1/embed`, {
      method: "POST",
      body: "{}",
      headers: { "content-type": "application/json" },
    });
    expect(unsigned.status).toBe(401);
    expect(((await unsigned.json()) as { error: { requestId: string } }).error.requestId).toBe(
      unsigned.headers.get("x-request-id"),
    );
    const missing = await call("GET", "/v1/nothing");
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { error: { requestId: string } }).error.requestId).toBe(
      missing.headers.get("x-request-id"),
    );
  });
});

/**
 * The runner's routes as OpenAPI routes: the document at `GET /openapi.json` lists each route with the
 * runner API's schemas, and requests are validated by them with the codes the runner has always
 * answered (a body that is not JSON: 400 `invalid_json`; one off the schema: 400 `invalid_argument`
 * naming the issue). Through the app in memory, over a Runner whose model and embedder are stand-ins
 * (nothing here reaches the model).
 */
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { signRequest } from "@epicache/shared";
import type { OnnxEmbedder } from "../embedder";
import { EpisodeStore } from "../episodes";
import type { ChatModel } from "../runtime";
import { FsObjectStore } from "../store";
import { runnerApp } from "./app";
import { loadRunnerConfig } from "./config";
import { Runner } from "./runner";

const SECRET = "runner-openapi-secret-0123456789";
const MAX_BODY = 4096;
const dir = mkdtempSync(join(tmpdir(), "epicache-openapi-"));
const config = loadRunnerConfig({
  env: { EPICACHE_HOME: dir },
  overrides: {
    host: "127.0.0.1",
    port: 0,
    secret: SECRET,
    store: join(dir, "store"),
    maxBodyBytes: MAX_BODY,
  },
});
const embedder = {
  modelId: "stand-in",
  dimension: 2,
  embed: async (texts: string[]) => texts.map(() => new Float32Array([0.6, 0.8])),
} as unknown as OnnxEmbedder;
const model = { fingerprint: "0123456789abcdef" } as unknown as ChatModel;
const app = runnerApp(
  new Runner(config, model, embedder, new EpisodeStore(new FsObjectStore(join(dir, "store")))),
);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A validly signed request; `headers` replace the signed ones (e.g. to send the same request id twice). */
async function send(
  method: "GET" | "POST",
  path: string,
  body = "",
  headers: Record<string, string> = {},
): Promise<Response> {
  const signed = await signRequest(SECRET, {
    method,
    path,
    timestamp: Math.floor(Date.now() / 1000),
    requestId: randomUUID(),
    body,
  });
  return app.request(path, {
    method,
    headers: { "content-type": "application/json", ...signed, ...headers },
    body: method === "GET" ? undefined : body,
  });
}

async function errorOf(res: Response): Promise<[number, string, string]> {
  const { error } = (await res.json()) as {
    error: { code: string; message: string; requestId: string };
  };
  expect(error.requestId).toBe(res.headers.get("x-request-id"));
  return [res.status, error.code, error.message];
}

type Operation = {
  requestBody?: { required?: boolean; content: Record<string, { schema: unknown }> };
  responses: Record<string, { content?: Record<string, { schema: unknown }> }>;
  parameters?: { name: string; in: string }[];
};
type Doc = {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
  components: {
    schemas: Record<string, { properties?: Record<string, unknown>; required?: string[] }>;
  };
};
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });

describe("GET /openapi.json", () => {
  it("lists each route with its request and response schemas and its errors (unsigned)", async () => {
    const res = await app.request("/openapi.json");
    expect(res.status).toBe(200);
    const doc = (await res.json()) as Doc;
    expect(doc.openapi).toBe("3.1.0");
    expect(Object.keys(doc.paths).sort()).toEqual([
      "/healthz",
      "/metrics",
      "/v1/embed",
      "/v1/generate",
      "/v1/jobs/{id}",
      "/v1/rebuild",
    ]);
    const json = (op: Operation, status: string) =>
      op.responses[status].content?.["application/json"].schema;
    const {
      "/v1/embed": embed,
      "/v1/rebuild": rebuild,
      "/v1/jobs/{id}": job,
      "/v1/generate": generate,
    } = doc.paths;
    for (const [op, request] of [
      [embed.post, "EmbedRequest"],
      [rebuild.post, "RebuildRequest"],
      [generate.post, "GenerateRequest"],
    ] as const) {
      expect(op.requestBody).toEqual({
        required: true,
        content: { "application/json": { schema: ref(request) } },
      });
      for (const status of ["400", "401", "413", "415", "500"])
        expect(json(op, status)).toEqual(ref("Error"));
    }
    expect(json(embed.post, "200")).toEqual(ref("EmbedResponse"));
    expect(json(rebuild.post, "202")).toEqual(ref("JobStatus"));
    expect(json(rebuild.post, "503")).toEqual(ref("Error"));
    expect(json(job.get, "200")).toEqual(ref("JobStatus"));
    expect(json(job.get, "404")).toEqual(ref("Error"));
    expect(job.get.parameters).toEqual([expect.objectContaining({ name: "id", in: "path" })]);
    expect(json(generate.post, "200")).toEqual(ref("GenerateResponse"));
    expect(Object.keys(generate.post.responses["200"].content ?? {})).toEqual([
      "application/json",
      "text/event-stream",
    ]);
    expect(json(doc.paths["/healthz"].get, "200")).toEqual(ref("Health"));
    expect(Object.keys(doc.paths["/metrics"].get.responses["200"].content ?? {})).toEqual([
      "text/plain",
    ]);
    // The components are the runner API's schemas (shared/src/runner-api/schemas.ts).
    const { schemas } = doc.components;
    expect(schemas.RebuildRequest.required).toEqual([
      "tenant",
      "conversation",
      "version",
      "messages",
    ]);
    expect(Object.keys(schemas.RebuildRequest.properties ?? {})).toEqual([
      "tenant",
      "conversation",
      "version",
      "messages",
      "base",
      "config",
      "callbackUrl",
    ]);
    expect(schemas.GenerateRequest.properties).toMatchObject({
      maxTokens: { default: 64 },
      stream: { default: false },
      dateHint: { default: false },
    });
    expect(schemas.EmbedRequest.properties).toMatchObject({
      texts: { type: "array", minItems: 1, maxItems: 256 },
    });
    expect(Object.keys(schemas.JobStatus.properties ?? {})).toEqual(
      expect.arrayContaining(["id", "status", "stage", "percent", "error", "result"]),
    );
    expect(schemas.Error).toMatchObject({
      properties: { error: { required: ["code", "message", "requestId"] } },
    });
  });
});

describe("validation by the routes' schemas", () => {
  it("a body that is not JSON: 400 invalid_json, as before", async () => {
    for (const path of ["/v1/embed", "/v1/rebuild", "/v1/generate"]) {
      for (const body of ["{", "", "not json", '{"texts":["a"]'])
        expect((await errorOf(await send("POST", path, body))).slice(0, 2)).toEqual([
          400,
          "invalid_json",
        ]);
    }
  });

  it("a body off the schema: 400 invalid_argument naming the issue, as before", async () => {
    const [status, code, message] = await errorOf(
      await send("POST", "/v1/embed", JSON.stringify({ texts: "not a list" })),
    );
    expect([status, code]).toEqual([400, "invalid_argument"]);
    expect(message).toMatch(/^texts: /);
    expect(
      (
        await errorOf(await send("POST", "/v1/embed", JSON.stringify({ texts: ["a"], extra: 1 })))
      )[1],
    ).toBe("invalid_argument");
    expect((await errorOf(await send("POST", "/v1/embed", "[]")))[2]).toMatch(/^body: /);
    const generate = await errorOf(
      await send(
        "POST",
        "/v1/generate",
        JSON.stringify({
          tenant: "../x",
          conversation: "c",
          version: "v",
          episode: -1,
          question: " ",
        }),
      ),
    );
    expect(generate.slice(0, 2)).toEqual([400, "invalid_argument"]);
    expect(generate[2]).toContain("tenant: tenant id");
    expect(generate[2]).toContain("episode: ");
    expect(generate[2]).toContain("question: the question is blank");
    expect(
      (
        await errorOf(
          await send(
            "POST",
            "/v1/rebuild",
            JSON.stringify({ tenant: "t", conversation: "c", version: "v", messages: [] }),
          ),
        )
      )[2],
    ).toMatch(/^messages: /);
  });

  it("a valid body reaches the runner; defaults are applied", async () => {
    const res = await send("POST", "/v1/embed", JSON.stringify({ texts: ["a", "b"] }));
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      model: "stand-in",
      dimension: 2,
      vectors: [
        [expect.closeTo(0.6), expect.closeTo(0.8)],
        [expect.closeTo(0.6), expect.closeTo(0.8)],
      ],
    });
    // A version that is not stored: the request got past validation (maxTokens and stream defaulted).
    expect(
      (
        await errorOf(
          await send(
            "POST",
            "/v1/generate",
            JSON.stringify({
              tenant: "t",
              conversation: "c",
              version: "v",
              episode: 0,
              question: "Where?",
            }),
          ),
        )
      ).slice(0, 2),
    ).toEqual([404, "store_not_found"]);
    expect(await errorOf(await send("GET", "/v1/jobs/nope"))).toEqual([
      404,
      "not_found",
      "no job nope on this runner",
    ]);
  });

  it("keeps the body limit (413), the signature (401, replays too) and answers other media types 415", async () => {
    expect(
      (
        await errorOf(
          await send("POST", "/v1/embed", JSON.stringify({ texts: ["x".repeat(MAX_BODY)] })),
        )
      ).slice(0, 2),
    ).toEqual([413, "payload_too_large"]);
    const unsigned = await app.request("/v1/embed", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ texts: ["a"] }),
    });
    expect((await errorOf(unsigned)).slice(0, 2)).toEqual([401, "unauthorized"]);
    const body = JSON.stringify({ texts: ["a"] });
    const once = await signRequest(SECRET, {
      method: "POST",
      path: "/v1/embed",
      timestamp: Math.floor(Date.now() / 1000),
      requestId: randomUUID(),
      body,
    });
    expect((await send("POST", "/v1/embed", body, once)).status).toBe(200);
    expect((await errorOf(await send("POST", "/v1/embed", body, once))).slice(0, 2)).toEqual([
      401,
      "unauthorized",
    ]);
    // The edge always sends application/json; before, the runner parsed any body as JSON.
    expect(
      (
        await errorOf(await send("POST", "/v1/embed", body, { "content-type": "text/plain" }))
      ).slice(0, 2),
    ).toEqual([415, "unsupported_media_type"]);
  });
});

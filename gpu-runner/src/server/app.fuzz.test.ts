/**
 * Property-based fuzzing of the runner's signed routes, against a real runner (SmolLM2, the ONNX
 * embedder, a filesystem store) through its Hono app: arbitrary bodies (any text, any JSON, invalid
 * UTF-8, request shapes with arbitrary field values, a few valid requests), arbitrary job ids, all
 * validly signed. Never a 5xx; every rejection is a 4xx `{error: {code, message}}` with a known code
 * and the status that code maps to. Valid rebuilds are kept cheap (a context limit that the first
 * session cannot fit, so the job fails before any model call); valid questions go to versions that
 * do not exist. Skips without the pulled models (CI requires them).
 */
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ERROR_CODES, signRequest, type JobStatus } from "@epicache/shared";
import { NEEDS_PULL, pulledModel } from "../testing";
import { runnerApp } from "./app";
import { loadRunnerConfig } from "./config";
import { startRunner, type RunningRunner } from "./serve";

const SECRET = "runner-fuzz-secret-0123456789";
const MAX_BODY = 64 << 10;
const ready = pulledModel("chat") !== undefined && pulledModel("embedder") !== undefined;

let running: RunningRunner | undefined;
let app: ReturnType<typeof runnerApp>;
const dir = mkdtempSync(join(tmpdir(), "epicache-fuzz-"));

/** Sends a validly signed request; the path is signed as the server will see it (normalised). */
async function send(method: string, rawPath: string, body: string | Uint8Array): Promise<Response> {
  const url = new URL(rawPath, "http://127.0.0.1");
  const path = url.pathname + url.search;
  const headers = await signRequest(SECRET, {
    method,
    path,
    timestamp: Math.floor(Date.now() / 1000),
    requestId: randomUUID(),
    body: method === "GET" ? "" : body,
  });
  const sent = typeof body === "string" ? body : new Blob([new Uint8Array(body)]);
  return app.request(path, {
    method,
    headers: { ...headers, "content-type": "application/json" },
    body: method === "GET" ? undefined : sent,
  });
}

/** Checks the property on one response and returns its status. */
async function checkAnswer(res: Response): Promise<number> {
  const text = await res.text();
  const context = `${res.status} ${text.slice(0, 300)}`;
  expect(res.status, context).toBeLessThan(500);
  if (res.status >= 400) {
    const body = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
    expect(typeof body.error?.message, context).toBe("string");
    const code = body.error?.code as keyof typeof ERROR_CODES;
    expect(Object.keys(ERROR_CODES), context).toContain(code);
    expect(res.status, context).toBe(ERROR_CODES[code]);
  } else if (res.headers.get("content-type")?.startsWith("text/event-stream")) {
    // A streamed answer reports its failure as an `error` event, with a code all the same.
    for (const block of text.split("\n\n")) {
      if (!/^event: error$/m.test(block)) continue;
      const data = JSON.parse(/^data: (.*)$/m.exec(block)?.[1] ?? "null") as {
        error: { code: string };
      };
      expect(Object.keys(ERROR_CODES), context).toContain(data.error.code);
    }
  }
  return res.status;
}

// ── bodies ──
const validId = fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,10}$/).filter((s) => !s.includes(".."));
const anyValue = fc.jsonValue({ maxDepth: 3 });
/** Mostly plausible, sometimes anything. */
const field = <T>(plausible: fc.Arbitrary<T>) =>
  fc.oneof(
    { weight: 3, arbitrary: plausible as fc.Arbitrary<unknown> },
    { weight: 1, arbitrary: anyValue },
  );
const message = fc.record(
  {
    speaker: field(fc.constantFrom("Ann", "Bo", "")),
    text: field(fc.string({ maxLength: 40 })),
    session: field(fc.oneof(fc.string({ maxLength: 4 }), fc.integer())),
    id: field(fc.string({ maxLength: 5 })),
    timestamp: field(fc.string({ maxLength: 10 })),
  },
  { requiredKeys: [] },
);
const config = fc.record(
  {
    method: field(fc.constantFrom("epicache", "full", "nope")),
    episodes: field(fc.integer({ min: -1, max: 100 })),
    budget: field(fc.integer()),
    block: field(fc.integer({ min: 0, max: 10_000 })),
    maxContext: field(fc.integer({ min: 0, max: 100 })),
    dtype: field(fc.constantFrom("f16", "f64")),
  },
  { requiredKeys: [] },
);

const shapes = {
  embed: fc.record(
    {
      texts: field(fc.array(field(fc.string({ maxLength: 50 })), { maxLength: 4 })),
      extra: anyValue,
    },
    { requiredKeys: [] },
  ),
  rebuild: fc.record(
    {
      tenant: field(validId),
      conversation: field(validId),
      version: field(validId),
      messages: field(fc.array(field(message), { maxLength: 4 })),
      config: field(config),
      callbackUrl: field(
        fc.constantFrom("not a url", "ftp://127.0.0.1/x", "javascript:alert(1)", ""),
      ),
    },
    { requiredKeys: [] },
  ),
  generate: fc.record(
    {
      tenant: field(validId),
      conversation: field(validId),
      version: field(validId),
      episode: field(fc.integer({ min: -2, max: 10_001 })),
      question: field(fc.string({ maxLength: 30 })),
      maxTokens: field(fc.integer({ min: -1, max: 600 })),
      stream: field(fc.boolean()),
      dateHint: field(fc.boolean()),
    },
    { requiredKeys: [] },
  ),
};

/** Valid requests that stay cheap: a few texts to embed; rebuilds that fail in their first stage; questions to missing versions. */
const valid = {
  embed: fc.record({
    texts: fc.array(fc.string({ minLength: 1, maxLength: 40 }), { minLength: 1, maxLength: 3 }),
  }),
  rebuild: fc.record({
    tenant: validId,
    conversation: validId,
    version: validId,
    // The first message alone is over 64 tokens, so a 64-token context never fits a session.
    messages: fc
      .array(
        fc.record({
          speaker: fc.constantFrom("Ann", "Bo"),
          text: fc.string({ maxLength: 40 }),
          session: fc.constantFrom(1, 2, "x"),
        }),
        { maxLength: 3 },
      )
      .map((rest) => [
        { speaker: "Ann", text: "tell me about the pottery class again ".repeat(20), session: 1 },
        ...rest,
      ]),
    config: fc.constant({ maxContext: 64 }),
  }),
  generate: fc.record({
    tenant: validId,
    conversation: validId,
    version: validId,
    episode: fc.nat({ max: 3 }),
    question: fc.string({ minLength: 1, maxLength: 30 }).filter((q) => q.trim() !== ""),
    stream: fc.boolean(),
  }),
};

const bodyOf = (
  shape: fc.Arbitrary<unknown>,
  ok: fc.Arbitrary<unknown>,
): fc.Arbitrary<string | Uint8Array> =>
  fc.oneof(
    { weight: 3, arbitrary: shape.map((v) => JSON.stringify(v)) },
    { weight: 1, arbitrary: ok.map((v) => JSON.stringify(v)) },
    { weight: 1, arbitrary: fc.json({ maxDepth: 3 }) },
    { weight: 1, arbitrary: fc.string({ maxLength: 60, unit: "binary" }) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 40 }) },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        "",
        "null",
        "[]",
        "{}",
        '{"texts":["a"]',
        "\uFEFF{}",
        '{"__proto__":{"texts":["x"]}}',
      ),
    },
  );

const RUNS = 300;

describe.skipIf(!ready)(`the runner's signed routes under fuzzing ${NEEDS_PULL}`, () => {
  beforeAll(async () => {
    const cfg = loadRunnerConfig({
      env: { EPICACHE_HOME: process.env.EPICACHE_HOME },
      overrides: {
        host: "127.0.0.1",
        port: 0,
        secret: SECRET,
        store: join(dir, "store"),
        maxBodyBytes: MAX_BODY,
        queueLimit: 10_000,
        build: { method: "epicache", episodes: 2, budget: 64, block: 128, dtype: "f16" },
      },
    });
    running = await startRunner(cfg);
    app = runnerApp(running.runner);
  }, 300_000);
  afterAll(async () => {
    await running?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  for (const route of ["embed", "rebuild", "generate"] as const) {
    it(`POST /v1/${route}: never a 5xx, every rejection a known code`, async () => {
      const seen = new Set<number>();
      await fc.assert(
        fc.asyncProperty(bodyOf(shapes[route], valid[route]), async (body) => {
          seen.add(await checkAnswer(await send("POST", `/v1/${route}`, body)));
        }),
        { numRuns: RUNS },
      );
      // The runs reached past validation too: embedded, queued, or looked the version up.
      expect([...seen].sort()).toEqual(
        expect.arrayContaining([400, { embed: 200, rebuild: 202, generate: 404 }[route]]),
      );
    }, 120_000);
  }

  it("valid rebuilds are accepted, and their jobs fail with a known code, not internal", async () => {
    const ids: string[] = [];
    await fc.assert(
      fc.asyncProperty(valid.rebuild, async (request) => {
        const res = await send("POST", "/v1/rebuild", JSON.stringify(request));
        expect(await checkAnswer(res.clone())).toBe(202);
        ids.push(((await res.json()) as JobStatus).id);
      }),
      { numRuns: 20 },
    );
    await running?.runner.drain();
    for (const id of ids) {
      const res = await send("GET", `/v1/jobs/${id}`, "");
      expect(await checkAnswer(res.clone())).toBe(200);
      const job = (await res.json()) as JobStatus;
      expect(job.status).toBe("failed");
      expect(["invalid_argument", "conversation_invalid"]).toContain(job.error?.code);
    }
  }, 120_000);

  it("GET /v1/jobs/{id} with any id: 404 not_found or a job, never a 5xx", async () => {
    const raw = fc.string({
      maxLength: 20,
      unit: fc.constantFrom(
        "a",
        "0",
        "-",
        ".",
        "/",
        "%",
        "?",
        "#",
        "&",
        "=",
        "+",
        " ",
        "é",
        "\u0000",
        "%2F",
        "%zz",
        "..",
      ),
    });
    const id = fc.oneof(
      fc.string({ maxLength: 40, unit: "binary" }).map(encodeURIComponent),
      raw,
      fc.uuid(),
    );
    await fc.assert(
      fc.asyncProperty(id, async (i) => {
        expect([200, 400, 401, 404]).toContain(
          await checkAnswer(await send("GET", `/v1/jobs/${i}`, "")),
        );
      }),
      { numRuns: 300 },
    );
  }, 120_000);

  it("the wrong method, an unknown route or an oversized body: a known 4xx", async () => {
    const request = fc.tuple(
      fc.constantFrom("GET", "PUT", "DELETE", "PATCH", "POST"),
      fc.constantFrom(
        "/v1/embed",
        "/v1/rebuild",
        "/v1/generate",
        "/v1/jobs",
        "/v1/jobs/",
        "/v1/",
        "/v1/x/y",
      ),
      fc.string({ maxLength: 20 }),
    );
    await fc.assert(
      fc.asyncProperty(request, async ([method, path, body]) => {
        const status = await checkAnswer(await send(method, path, body));
        if (!(method === "POST" && ["/v1/embed", "/v1/rebuild", "/v1/generate"].includes(path)))
          expect(status).toBe(404);
      }),
      { numRuns: 100 },
    );
    const big = JSON.stringify({ texts: ["x".repeat(MAX_BODY)] });
    expect(await checkAnswer(await send("POST", "/v1/embed", big))).toBe(413);
  }, 120_000);
});

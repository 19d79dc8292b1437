/**
 * The runner's HTTP API (Hono with `@hono/zod-openapi`; docs/design.md §5): `POST /v1/embed`,
 * `POST /v1/rebuild`, `GET /v1/jobs/{id}`, `POST /v1/generate` (JSON or server-sent events), `GET
 * /metrics`, `GET /healthz`, and the OpenAPI document of them all at `GET /openapi.json`. The routes
 * (routes.ts) validate their requests with the runner API's schemas. Every `/v1/` request is signed
 * by the edge (shared/runner-api/signature.ts): unsigned, forged, stale or replayed requests get 401.
 * Bodies over the configured size get 413. Errors are `{error: {code, message, requestId}}`, mapped
 * in one `onError`; every response carries its request id in `x-request-id` (the edge's, when it
 * sends one). A 5xx says only its code's fixed text (PUBLIC_MESSAGES): the exception goes to the
 * log, under the request id.
 */
import { OpenAPIHono } from "@hono/zod-openapi";
import type { Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import { HTTPException } from "hono/http-exception";
import { streamSSE } from "hono/streaming";
import { LRUCache } from "lru-cache";
import {
  describeError,
  errorBody,
  httpStatusOf,
  isEpicacheError,
  PUBLIC_MESSAGES,
  REQUEST_ID_HEADER,
  requestIdFrom,
  SIGNATURE_TOLERANCE_SECONDS,
  validationError,
  verifyRequest,
  X_REQUEST_ID,
  type ErrorBody,
  type ErrorCode,
  type GenerateResponse,
} from "@epicache/shared";
import {
  embedRoute,
  generateRoute,
  healthRoute,
  jobRoute,
  metricsRoute,
  rebuildRoute,
} from "./routes";
import type { Runner } from "./runner";

type Status = 200 | 202 | 400 | 401 | 404 | 409 | 413 | 415 | 422 | 500 | 502 | 503;

/**
 * Whether a request id was seen within twice the signature tolerance (a replay of it is refused), on
 * the clock `now` (seconds). The ids are held for that long, each dropped when it expires, and never
 * sooner: a bound on their number would let a replay through once enough others came in.
 */
function seenIds(now: () => number): (id: string) => boolean {
  const ids = new LRUCache<string, true>({
    ttl: 2 * SIGNATURE_TOLERANCE_SECONDS * 1000,
    ttlAutopurge: true,
    ttlResolution: 0,
    perf: { now: () => now() * 1000 },
  });
  return (id) => {
    if (ids.has(id)) return true;
    ids.set(id, true);
    return false;
  };
}

// Hono's own exceptions: a body that is not JSON (400), not application/json (415), and the like.
const CODE_OF_HTTP_STATUS: Partial<Record<number, ErrorCode>> = {
  400: "invalid_json",
  401: "unauthorized",
  413: "payload_too_large",
  415: "unsupported_media_type",
};

/**
 * The answer for a thrown `e`: one of ours (or Hono's) below 500 keeps its message (it is about the
 * request); a 5xx, or anything else (500 `internal`), says only the code's fixed text, and is logged
 * in full under the request id.
 */
function errorAnswer(
  e: unknown,
  requestId: string,
  log: (line: string) => void,
  where: Record<string, unknown>,
): { status: Status; body: ErrorBody } {
  const code: ErrorCode = isEpicacheError(e)
    ? e.code
    : e instanceof HTTPException
      ? (CODE_OF_HTTP_STATUS[e.status] ?? (e.status >= 500 ? "internal" : "invalid_argument"))
      : "internal";
  const status = httpStatusOf(code) as Status;
  if (status < 500) return { status, body: errorBody(code, (e as Error).message, requestId) };
  log(
    JSON.stringify({
      level: "error",
      event: "request_failed",
      requestId,
      ...where,
      status,
      code,
      error: describeError(e),
    }),
  );
  return { status, body: errorBody(code, PUBLIC_MESSAGES[code], requestId) };
}

/**
 * The runner's app. `log` takes the JSON lines of failed requests (default: stderr).
 */
export function runnerApp(
  runner: Runner,
  options: { now?: () => number; log?: (line: string) => void } = {},
): OpenAPIHono {
  const now = options.now ?? (() => Date.now() / 1000);
  const log = options.log ?? ((line: string) => console.error(line));
  const seen = seenIds(now);
  const app = new OpenAPIHono({
    defaultHook: (result) => {
      if (!result.success) throw validationError(result.error);
    },
  });
  const { metrics, config } = runner;
  // The request's id: the edge's (x-request-id), else the signed call's, else a new one; set first.
  const requestIds = new WeakMap<Context, string>();
  const requestIdOf = (c: Context) => requestIds.get(c) ?? requestIdFrom([]);
  const fail = (c: Context, e: unknown) =>
    errorAnswer(e, requestIdOf(c), log, { method: c.req.method, path: c.req.path });

  app.use("*", async (c, next) => {
    const id = requestIdFrom([c.req.header(X_REQUEST_ID), c.req.header(REQUEST_ID_HEADER)]);
    requestIds.set(c, id);
    c.header(X_REQUEST_ID, id);
    await next();
  });

  // Metrics per route (the route's pattern, not the path, so ids do not explode the labels).
  app.use("*", async (c, next) => {
    const t0 = performance.now();
    await next();
    const route = c.req.routePath === "/*" ? "unmatched" : c.req.routePath;
    metrics.requests.inc({ route, method: c.req.method, status: String(c.res.status) });
    metrics.latency.observe({ route, method: c.req.method }, (performance.now() - t0) / 1000);
  });

  app.openapi(healthRoute, (c) =>
    c.json(
      {
        ok: true as const,
        model: runner.model.fingerprint,
        embedder: runner.embedder.modelId,
        queueDepth: runner.queueDepth,
      },
      200,
    ),
  );
  app.openapi(metricsRoute, async (c) =>
    c.text(await metrics.registry.metrics(), 200, { "content-type": metrics.registry.contentType }),
  );
  app.doc31("/openapi.json", {
    openapi: "3.1.0",
    info: {
      title: "Epicache runner API",
      version: "1",
      description:
        "What the edge calls: embeddings, episode rebuilds and answers. Every /v1/ request is signed (x-epicache-timestamp, x-epicache-request-id, x-epicache-signature: an HMAC-SHA256 of method, path, timestamp, request id and body with the shared secret).",
    },
  });

  app.use(
    "/v1/*",
    bodyLimit({
      maxSize: config.maxBodyBytes,
      onError: (c) =>
        c.json(
          errorBody(
            "payload_too_large",
            `the body is over ${config.maxBodyBytes} bytes`,
            requestIdOf(c),
          ),
          413,
        ),
    }),
  );
  app.use("/v1/*", async (c, next) => {
    const body = new Uint8Array(await c.req.arrayBuffer());
    const url = new URL(c.req.url);
    await verifyRequest(
      config.secret,
      { method: c.req.method, path: url.pathname + url.search, body },
      (name) => c.req.header(name),
      { now: now(), seen },
    );
    await next();
  });

  app.openapi(embedRoute, async (c) => c.json(await runner.embed(c.req.valid("json").texts), 200));

  app.openapi(rebuildRoute, (c) => c.json(runner.rebuild(c.req.valid("json")), 202));

  app.openapi(jobRoute, (c) => c.json(runner.job(c.req.valid("param").id), 200));

  app.openapi(generateRoute, async (c) => {
    const r = c.req.valid("json");
    const input = {
      tenant: r.tenant,
      conversation: r.conversation,
      version: r.version,
      episode: r.episode,
      question: r.question,
      maxTokens: r.maxTokens,
      dateHint: r.dateHint,
    };
    const reply = (out: Awaited<ReturnType<Runner["generate"]>>): GenerateResponse => ({
      answer: out.answer,
      tenant: r.tenant,
      conversation: r.conversation,
      version: r.version,
      episode: r.episode,
      tokens: out.tokens,
      timings: out.timings,
    });
    if (!r.stream) return c.json(reply(await runner.generate(input)), 200);
    return streamSSE(c, async (stream) => {
      try {
        const out = await runner.generate(input, (text) =>
          stream.writeSSE({ event: "token", data: JSON.stringify({ text }) }),
        );
        await stream.writeSSE({ event: "done", data: JSON.stringify(reply(out)) });
      } catch (e) {
        await stream.writeSSE({ event: "error", data: JSON.stringify(fail(c, e).body) });
      }
    });
  });

  app.notFound((c) =>
    c.json(
      errorBody(
        "not_found",
        `no route ${c.req.method} ${new URL(c.req.url).pathname}`,
        requestIdOf(c),
      ),
      404,
    ),
  );
  app.onError((e, c) => {
    const { status, body } = fail(c, e);
    return c.json(body, status);
  });
  return app;
}

/**
 * The edge's Hono app: the routes of docs/design.md §5, each defined with its zod schemas (which validate
 * the request and make the OpenAPI document at `GET /openapi.json`), and one `onError` that turns
 * every error into `{error: {code, message, requestId}}`. Every response carries its request id in
 * `x-request-id`. A 5xx says only its code's fixed text (PUBLIC_MESSAGES): what went wrong inside
 * (a runner's URL or answer, an exception) is logged under the request id, never answered.
 */
import { OpenAPIHono, createRoute, z } from "@hono/zod-openapi";
import { HTTPException } from "hono/http-exception";
import { bodyLimit } from "hono/body-limit";
import { createMiddleware } from "hono/factory";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import {
  EpicacheError,
  PUBLIC_MESSAGES,
  X_REQUEST_ID,
  describeError,
  errorBody,
  httpStatusOf,
  isEpicacheError,
  requestIdFrom,
  validationError,
  type ErrorCode,
} from "@epicache/shared";
import { readConfig, type AppEnv } from "./env";
import { logError } from "./log";
import { conversationRoutes } from "./routes/conversations";
import { queryRoutes } from "./routes/query";
import { CALLBACK_PATH } from "./rebuild";
import { MAX_CALLBACK_BYTES, runnerCallbackRoutes } from "./routes/runner-callback";
import { tenantRoutes } from "./routes/tenants";
import { versionRoutes } from "./routes/versions";
import { webhookRoutes } from "./routes/webhooks";

const health = createRoute({
  method: "get",
  path: "/healthz",
  tags: ["operations"],
  summary: "Liveness of the edge Worker itself (it does not reach the runners)",
  responses: {
    200: {
      description: "Alive",
      content: { "application/json": { schema: z.object({ ok: z.literal(true) }) } },
    },
  },
});

/**
 * The request's id: Cloudflare's `cf-ray` when present (it names the request in Cloudflare's own
 * logs), else the client's `x-request-id` when well-formed (so a client can correlate with its own
 * logs), else a new UUID; answered in `x-request-id` on every response, errors included.
 */
const requestId = createMiddleware<AppEnv>(async (c, next) => {
  const id = requestIdFrom([c.req.header("cf-ray"), c.req.header(X_REQUEST_ID)]);
  c.set("requestId", id);
  c.header(X_REQUEST_ID, id);
  await next();
});

/**
 * Reads the configuration once per request, and bounds request bodies (413 `payload_too_large`): the
 * runner's completion callback, which carries window vectors, to MAX_CALLBACK_BYTES, others to
 * MAX_REQUEST_BYTES.
 */
const configure = createMiddleware<AppEnv>(async (c, next) => {
  const config = readConfig(c.env);
  c.set("config", config);
  const maxSize = c.req.path === CALLBACK_PATH ? MAX_CALLBACK_BYTES : config.maxRequestBytes;
  return bodyLimit({
    maxSize,
    onError: () => {
      throw new EpicacheError("payload_too_large", `the request body is over ${maxSize} bytes`);
    },
  })(c, next);
});

/**
 * Builds the app (a fresh one per call: tests build their own).
 *
 * @example
 * ```sh
 * curl -s http://127.0.0.1:8787/healthz        # {"ok":true}
 * curl -s http://127.0.0.1:8787/openapi.json   # the OpenAPI 3.1 document of every route
 * ```
 */
export function createApp(): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>({
    defaultHook: (result) => {
      if (!result.success) throw validationError(result.error);
    },
  });
  app.use("*", requestId);
  app.openapi(health, (c) => c.json({ ok: true as const }, 200));
  app.use("/v1/*", configure);
  app.route("/", tenantRoutes);
  app.route("/", conversationRoutes);
  app.route("/", versionRoutes);
  app.route("/", queryRoutes);
  app.route("/", webhookRoutes);
  app.route("/", runnerCallbackRoutes);

  app.openAPIRegistry.registerComponent("securitySchemes", "apiKey", {
    type: "http",
    scheme: "bearer",
    description: "A tenant's API key.",
  });
  app.openAPIRegistry.registerComponent("securitySchemes", "adminToken", {
    type: "http",
    scheme: "bearer",
    description: "The ADMIN_TOKEN secret.",
  });
  app.doc31("/openapi.json", {
    openapi: "3.1.0",
    info: {
      title: "Epicache edge API",
      version: "1",
      description:
        "Long-conversation memory: conversations, episode rebuilds, and questions answered from episodic KV caches.",
    },
  });

  app.notFound((c) =>
    c.json(
      errorBody(
        "not_found",
        `no route ${c.req.method} ${new URL(c.req.url).pathname}`,
        c.var.requestId,
      ),
      404,
    ),
  );
  app.onError((err, c) => {
    const requestId = c.var.requestId ?? requestIdFrom([]);
    let code: ErrorCode = "internal";
    if (isEpicacheError(err)) code = err.code;
    else if (err instanceof HTTPException) {
      // Hono's own: a body that is not JSON (400) and the like.
      const byStatus: Partial<Record<number, ErrorCode>> = {
        400: "invalid_json",
        401: "unauthorized",
        413: "payload_too_large",
        415: "unsupported_media_type",
      };
      code = byStatus[err.status] ?? "invalid_argument";
    }
    const status = httpStatusOf(code);
    const known = isEpicacheError(err) || err instanceof HTTPException;
    // A 5xx, and an error that reports an upstream's failure (its cause), is logged in full; its
    // own message (which may name runners or quote them) is never answered.
    if (status >= 500 || !known || err.cause !== undefined) {
      logError("request_failed", {
        requestId,
        method: c.req.method,
        path: new URL(c.req.url).pathname,
        status,
        code,
        error: describeError(err),
      });
    }
    return c.json(
      errorBody(code, status >= 500 || !known ? PUBLIC_MESSAGES[code] : err.message, requestId),
      status as ContentfulStatusCode,
    );
  });
  return app;
}

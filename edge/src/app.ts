/**
 * The edge's Hono app: the routes of docs/design.md §5, each defined with its zod schemas (which validate
 * the request and make the OpenAPI document at `GET /openapi.json`), and one `onError` that turns
 * every error into `{error: {code, message}}`.
 */
import { OpenAPIHono, createRoute, z } from "@hono/zod-openapi";
import { HTTPException } from "hono/http-exception";
import { bodyLimit } from "hono/body-limit";
import { createMiddleware } from "hono/factory";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { ZodError } from "zod";
import { EpicacheError, httpStatusOf, isEpicacheError, type ErrorCode } from "@epicache/shared";
import { readConfig, type AppEnv } from "./env";
import { conversationRoutes } from "./routes/conversations";
import { queryRoutes } from "./routes/query";
import { CALLBACK_PATH } from "./queue/rebuild-consumer";
import { MAX_CALLBACK_BYTES, runnerCallbackRoutes } from "./routes/runner-callback";
import { tenantRoutes } from "./routes/tenants";
import { webhookRoutes } from "./routes/webhooks";

/** `invalid_argument` naming the first few zod issues (`messages.0.speaker: …`). */
export function validationError(error: ZodError): EpicacheError {
  const issues = error.issues.slice(0, 5).map((i) => `${i.path.join(".") || "body"}: ${i.message}`);
  return new EpicacheError("invalid_argument", issues.join("; "));
}

const health = createRoute({
  method: "get",
  path: "/healthz",
  tags: ["operations"],
  summary: "Liveness of the edge Worker itself (it does not reach the runners)",
  responses: { 200: { description: "Alive", content: { "application/json": { schema: z.object({ ok: z.literal(true) }) } } } },
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
  app.openapi(health, (c) => c.json({ ok: true as const }, 200));
  app.use("/v1/*", configure);
  app.route("/", tenantRoutes);
  app.route("/", conversationRoutes);
  app.route("/", queryRoutes);
  app.route("/", webhookRoutes);
  app.route("/", runnerCallbackRoutes);

  app.openAPIRegistry.registerComponent("securitySchemes", "apiKey", { type: "http", scheme: "bearer", description: "A tenant's API key." });
  app.openAPIRegistry.registerComponent("securitySchemes", "adminToken", { type: "http", scheme: "bearer", description: "The ADMIN_TOKEN secret." });
  app.doc31("/openapi.json", {
    openapi: "3.1.0",
    info: { title: "Epicache edge API", version: "1", description: "Long-conversation memory: conversations, episode rebuilds, and questions answered from episodic KV caches." },
  });

  app.notFound((c) => c.json({ error: { code: "not_found" satisfies ErrorCode, message: `no route ${c.req.method} ${new URL(c.req.url).pathname}` } }, 404));
  app.onError((err, c) => {
    if (isEpicacheError(err)) {
      const code: ErrorCode = err.code;
      return c.json({ error: { code, message: err.message } }, httpStatusOf(code) as ContentfulStatusCode);
    }
    if (err instanceof HTTPException) {
      // Hono's own: a body that is not JSON (400) and the like.
      const byStatus: Partial<Record<number, ErrorCode>> = { 400: "invalid_json", 401: "unauthorized", 413: "payload_too_large", 415: "unsupported_media_type" };
      const code: ErrorCode = byStatus[err.status] ?? "invalid_argument";
      return c.json({ error: { code, message: err.message } }, httpStatusOf(code) as ContentfulStatusCode);
    }
    console.error("unhandled error", err);
    return c.json({ error: { code: "internal" satisfies ErrorCode, message: "internal error" } }, 500);
  });
  return app;
}

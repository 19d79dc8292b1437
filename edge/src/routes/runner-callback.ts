/**
 * `POST /v1/internal/rebuild-callback`: a runner posts a finished rebuild job here, signed with the
 * edge–runner secret (shared/src/runner-api/signature.ts); a replayed request id is refused. Its body
 * may be larger than other requests' ({@link MAX_CALLBACK_BYTES}): it carries the window vectors and terms.
 */
import { OpenAPIHono, createRoute, z } from "@hono/zod-openapi";
import { createMiddleware } from "hono/factory";
import { EpicacheError, JobStatus, REQUEST_ID_HEADER, verifyRequest } from "@epicache/shared";
import { activeVersionOf } from "../db/conversations";
import { runnerRequestSeen } from "../db/deliveries";
import type { AppEnv } from "../env";
import { applyJob, CALLBACK_PATH } from "../rebuild";
import { errorResponses } from "./schemas";

/**
 * The body limit of this route: a job's result carries 512 characters of window vectors per window
 * (384 dimensions) and, for `lexical` routing, the window's terms (330 to 420 characters on REALTALK
 * and LoCoMo), so 16 MiB holds the ~12,500 windows of a 50,000-message conversation of such messages,
 * where MAX_REQUEST_BYTES (1 MiB) would hold about 1,100. A result over it is still read when the
 * edge polls the job (rebuild/poll-submitted.ts), which no body limit applies to.
 */
export const MAX_CALLBACK_BYTES = 16 << 20;

const verifyRunner = createMiddleware<AppEnv>(async (c, next) => {
  const url = new URL(c.req.url);
  const now = Date.now() / 1000;
  await verifyRequest(
    c.var.config.runnerSecret,
    { method: c.req.method, path: url.pathname + url.search, body: await c.req.text() },
    (name) => c.req.header(name),
    { now },
  );
  if (await runnerRequestSeen(c.env.DB, c.req.header(REQUEST_ID_HEADER) ?? "", now)) {
    throw new EpicacheError(
      "unauthorized",
      `replayed request: ${REQUEST_ID_HEADER} was already used`,
    );
  }
  await next();
});

const route = createRoute({
  method: "post",
  path: CALLBACK_PATH,
  tags: ["internal"],
  summary: "A runner's rebuild completion (signed with the runner secret)",
  middleware: [verifyRunner] as const,
  request: { body: { required: true, content: { "application/json": { schema: JobStatus } } } },
  responses: {
    200: {
      description: "Applied",
      content: {
        "application/json": {
          schema: z.object({
            version: z.string(),
            status: z.string(),
            activeVersion: z.string().nullable(),
          }),
        },
      },
    },
    ...errorResponses(400, 401, 404, 502),
  },
});

/**
 * The runner callback route.
 *
 * @example
 * ```ts
 * // The runner, when a job finishes (callbackUrl = EDGE_PUBLIC_URL + "/v1/internal/rebuild-callback"):
 * const headers = await signRequest(secret, { method: "POST", path: "/v1/internal/rebuild-callback", timestamp, requestId, body });
 * ```
 */
export const runnerCallbackRoutes = new OpenAPIHono<AppEnv>().openapi(route, async (c) => {
  const job = c.req.valid("json");
  const record = await applyJob(c.env, job);
  const activeVersion = await activeVersionOf(c.env.DB, job.tenant, job.conversation);
  return c.json({ version: record.version, status: record.status, activeVersion }, 200);
});

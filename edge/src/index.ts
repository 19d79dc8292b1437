/**
 * The edge: the public HTTP API of EpiCache, a Hono app on Cloudflare Workers.
 *
 * For now a placeholder with a health check and the shared error shape; the conversation and
 * episode routes are added as the runner becomes reachable as a service.
 */
import { Hono } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { httpStatusOf, isEpicacheError, type ErrorCode } from "@epicache/shared";

const app = new Hono();

/**
 * `GET /healthz` — liveness of the edge Worker itself (it does not reach the runner).
 *
 * @returns `200 {"ok": true}`
 * @example
 * ```sh
 * curl -s http://127.0.0.1:8787/healthz   # {"ok":true}
 * ```
 */
app.get("/healthz", (c) => c.json({ ok: true }));

/**
 * Every error leaves as `{error: {code, message}}`. An {@link isEpicacheError} keeps its code and the
 * status from {@link httpStatusOf}; anything else is a 500 `internal` whose details stay in the logs.
 */
app.onError((err, c) => {
  if (isEpicacheError(err)) {
    const code: ErrorCode = err.code;
    return c.json({ error: { code, message: err.message } }, httpStatusOf(code) as ContentfulStatusCode);
  }
  console.error("unhandled error", err);
  return c.json({ error: { code: "internal" satisfies ErrorCode, message: "internal error" } }, 500);
});

export default app;

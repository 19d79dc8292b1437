/**
 * The edge's log lines: one JSON object each, so that Workers Logs can search them by field. What a
 * tenant must not see (runner URLs, runner answers, exception text) is logged here, with the request
 * id the tenant's error body carries (or, for rebuilds outside a request, the tenant, conversation
 * and version, which the tenant sees too).
 *
 * @example
 * ```ts
 * logError("request_failed", { requestId, status: 503, code: "runner_unavailable", detail: "http://10.0.0.7:8788: 500 …" });
 * // {"level":"error","event":"request_failed","requestId":"…","status":503,…}
 * ```
 */
function line(level: "error" | "warn", event: string, fields: Record<string, unknown>): string {
  try {
    return JSON.stringify({ level, event, ...fields });
  } catch {
    return JSON.stringify({ level, event, unloggable: Object.keys(fields) });
  }
}

export function logError(event: string, fields: Record<string, unknown>): void {
  console.error(line("error", event, fields));
}

export function logWarn(event: string, fields: Record<string, unknown>): void {
  console.warn(line("warn", event, fields));
}

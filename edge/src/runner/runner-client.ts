/**
 * Calls to the runners: every request signed with the edge–runner secret
 * (shared/src/runner-api/signature.ts), with a timeout on the answer's headers, and failover: a
 * runner that cannot be reached, times out or answers 5xx is skipped for the next one in order.
 */
import { ERROR_CODES, EpicacheError, signRequest, type ErrorCode } from "@epicache/shared";
import type { EdgeConfig } from "../env";

/** One request to a runner. */
export interface RunnerCall {
  method: "GET" | "POST";
  /** Path and query (`/v1/jobs/abc`). */
  path: string;
  /** JSON-serialised as the body (POST). */
  body?: unknown;
}

/**
 * Sends one signed call to `runnerUrl`. The timeout covers the wait for the response's headers only,
 * so a streamed answer may take as long as it takes.
 */
export async function callRunner(config: Pick<EdgeConfig, "runnerSecret" | "runnerTimeoutMs">, runnerUrl: string, call: RunnerCall): Promise<Response> {
  const body = call.body === undefined ? "" : JSON.stringify(call.body);
  const headers = await signRequest(config.runnerSecret, { method: call.method, path: call.path, timestamp: Math.floor(Date.now() / 1000), requestId: crypto.randomUUID(), body });
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new Error(`no answer within ${config.runnerTimeoutMs} ms`)), config.runnerTimeoutMs);
  try {
    return await fetch(`${runnerUrl}${call.path}`, {
      method: call.method,
      headers: call.body === undefined ? headers : { ...headers, "content-type": "application/json" },
      body: call.body === undefined ? undefined : body,
      signal: controller.signal,
    });
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Tries `runners` in order until one answers below 500; `runner_unavailable` (503) naming what each
 * did when none does. A 4xx answer is returned as it is: the request, not the runner, is wrong.
 */
export async function callFirstAnswering(config: Pick<EdgeConfig, "runnerSecret" | "runnerTimeoutMs">, runners: readonly string[], call: RunnerCall): Promise<{ runner: string; response: Response }> {
  const failures: string[] = [];
  for (const runner of runners) {
    try {
      const response = await callRunner(config, runner, call);
      if (response.status < 500) return { runner, response };
      failures.push(`${runner}: ${response.status} ${(await response.text()).slice(0, 200)}`);
    } catch (e) {
      failures.push(`${runner}: ${(e as Error)?.message ?? String(e)}`);
    }
  }
  throw new EpicacheError("runner_unavailable", `no runner answered ${call.method} ${call.path.split("?")[0]}: ${failures.join("; ")}`);
}

/**
 * The error a runner's non-2xx answer carries (`{error: {code, message}}`), as an EpicacheError with
 * the same code when it is one of ours; `runner_invalid` otherwise.
 */
export async function runnerError(response: Response, what: string): Promise<EpicacheError> {
  const text = await response.text();
  try {
    const { error } = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
    if (typeof error?.code === "string" && error.code in ERROR_CODES) {
      return new EpicacheError(error.code as ErrorCode, `${what}: ${String(error.message ?? "")}`);
    }
  } catch {
    // not JSON: reported below
  }
  return new EpicacheError("runner_invalid", `${what}: the runner answered ${response.status} ${text.slice(0, 200)}`);
}

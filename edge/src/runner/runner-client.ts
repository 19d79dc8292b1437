/**
 * Calls to the runners: every request signed with the edge–runner secret
 * (shared/src/runner-api/signature.ts), with a timeout on the answer's headers, and failover: a
 * runner that cannot be reached, times out or answers 5xx is skipped for the next one in order.
 *
 * What a runner answers never reaches a tenant as it is: the errors made here carry their code's
 * fixed text (PUBLIC_MESSAGES), and the runner, its status and its answer as the error's `cause`,
 * which the app's onError logs under the request id.
 */
import {
  ERROR_CODES,
  EpicacheError,
  PUBLIC_MESSAGES,
  X_REQUEST_ID,
  signRequest,
  type ErrorCode,
} from "@epicache/shared";
import type { EdgeConfig } from "../env";

/** One request to a runner. */
export interface RunnerCall {
  method: "GET" | "POST";
  /** Path and query (`/v1/jobs/abc`). */
  path: string;
  /** JSON-serialised as the body (POST). */
  body?: unknown;
  /** The edge's request id, sent as `x-request-id` so that the runner's log lines carry it too. */
  requestId?: string;
}

/** Bytes of a runner's answer kept for the log. */
const LOGGED_BYTES = 2000;

/**
 * Sends one signed call to `runnerUrl`. The timeout covers the wait for the response's headers only,
 * so a streamed answer may take as long as it takes.
 */
export async function callRunner(
  config: Pick<EdgeConfig, "runnerSecret" | "runnerTimeoutMs">,
  runnerUrl: string,
  call: RunnerCall,
): Promise<Response> {
  const body = call.body === undefined ? "" : JSON.stringify(call.body);
  const signed = await signRequest(config.runnerSecret, {
    method: call.method,
    path: call.path,
    timestamp: Math.floor(Date.now() / 1000),
    requestId: crypto.randomUUID(),
    body,
  });
  const headers: Record<string, string> = { ...signed };
  if (call.body !== undefined) headers["content-type"] = "application/json";
  if (call.requestId !== undefined) headers[X_REQUEST_ID] = call.requestId;
  const controller = new AbortController();
  const timer = setTimeout(
    () => controller.abort(new Error(`no answer within ${config.runnerTimeoutMs} ms`)),
    config.runnerTimeoutMs,
  );
  try {
    return await fetch(`${runnerUrl}${call.path}`, {
      method: call.method,
      headers,
      body: call.body === undefined ? undefined : body,
      signal: controller.signal,
    });
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Tries `runners` in order until one answers below 500; `runner_unavailable` (503) when none does,
 * with what each did as its cause (for the log). A 4xx answer is returned as it is: the request, not
 * the runner, is wrong.
 */
export async function callFirstAnswering(
  config: Pick<EdgeConfig, "runnerSecret" | "runnerTimeoutMs">,
  runners: readonly string[],
  call: RunnerCall,
): Promise<{ runner: string; response: Response }> {
  const failures: { runner: string; status?: number; answer?: string; error?: string }[] = [];
  for (const runner of runners) {
    try {
      const response = await callRunner(config, runner, call);
      if (response.status < 500) return { runner, response };
      failures.push({
        runner,
        status: response.status,
        answer: (await response.text().catch(() => "")).slice(0, LOGGED_BYTES),
      });
    } catch (e) {
      failures.push({ runner, error: String((e as Error)?.message ?? e) });
    }
  }
  throw new EpicacheError("runner_unavailable", PUBLIC_MESSAGES.runner_unavailable, {
    cause: { call: `${call.method} ${call.path.split("?")[0]}`, failures },
  });
}

/**
 * `runner_invalid` (502) for a runner's answer that cannot be used, with the runner, what was asked,
 * why, and the start of the answer as its cause (for the log).
 */
export function invalidAnswer(
  runner: string,
  what: string,
  why: string,
  answer?: string,
): EpicacheError {
  return new EpicacheError("runner_invalid", PUBLIC_MESSAGES.runner_invalid, {
    cause: {
      runner,
      what,
      why,
      ...(answer === undefined ? {} : { answer: answer.slice(0, LOGGED_BYTES) }),
    },
  });
}

/**
 * Codes a runner gives about the edge's request to it rather than about the tenant's data (a
 * signature it refuses, a body it cannot read, a route or job it does not know): to the tenant, the
 * runner answered wrongly.
 */
const ABOUT_THE_EDGE: ReadonlySet<string> = new Set<ErrorCode>([
  "invalid_argument",
  "invalid_json",
  "unauthorized",
  "unsupported_media_type",
  "not_found",
  "webhook_invalid",
  "rate_limited",
  "limit_exceeded",
]);

/**
 * The code a tenant sees for a code a runner reported (in an answer, a job's error or an event):
 * the same when it is one of ours about the tenant's data or the runner's state, else
 * `runner_invalid`.
 */
export function tenantCode(runnerCode: unknown): ErrorCode {
  return typeof runnerCode === "string" &&
    runnerCode in ERROR_CODES &&
    !ABOUT_THE_EDGE.has(runnerCode)
    ? (runnerCode as ErrorCode)
    : "runner_invalid";
}

/** A runner's non-2xx answer, read: its status, its `{error: {code, message}}` if any, and its text. */
export interface RunnerAnswer {
  status: number;
  /** The runner's code when it is one of ours. */
  code: ErrorCode | null;
  /** The runner's message: for the log, never for a tenant. */
  message: string | null;
  text: string;
}

/** Reads a runner's non-2xx answer. */
export async function readRunnerAnswer(response: Response): Promise<RunnerAnswer> {
  const text = await response.text().catch(() => "");
  try {
    const { error } = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
    const code =
      typeof error?.code === "string" && error.code in ERROR_CODES
        ? (error.code as ErrorCode)
        : null;
    return {
      status: response.status,
      code,
      message: typeof error?.message === "string" ? error.message : null,
      text,
    };
  } catch {
    return { status: response.status, code: null, message: null, text };
  }
}

/**
 * The error a runner's non-2xx answer makes for a tenant: the code of {@link tenantCode} with its
 * fixed text; the runner, what was asked and its answer as the cause (for the log).
 */
export async function runnerError(
  response: Response,
  runner: string,
  what: string,
): Promise<EpicacheError> {
  const answer = await readRunnerAnswer(response);
  const code = tenantCode(answer.code);
  return new EpicacheError(code, PUBLIC_MESSAGES[code], {
    cause: { runner, what, status: answer.status, answer: answer.text.slice(0, LOGGED_BYTES) },
  });
}

/** `text` parsed as JSON, or null when it is not JSON. */
export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

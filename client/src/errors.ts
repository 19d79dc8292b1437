/** The client's errors: what the API answered, and rebuilds that failed or did not finish in time. */
import { ERROR_CODES, type ErrorCode } from "@epicache/shared/errors";
import type { Conversation, RebuildState } from "./types";

/**
 * A code the client reports itself: `unexpected_response`, an answer that is not what the API
 * documents (not JSON, not the error body, a status the route does not answer, a stream that ends
 * without `done` or `error`), as from a proxy in between.
 */
export type ClientErrorCode = "unexpected_response";

/** The service's codes (shared/src/errors.ts), the client's own, or one newer than this client. */
export type ApiErrorCode = ErrorCode | ClientErrorCode | (string & {});

/**
 * An error the API answered: `{error: {code, message, requestId}}` with its HTTP status, or an
 * `error` event of a streamed answer. Match on `code`, not on the message.
 *
 * @example
 * ```ts
 * try {
 *   await client.ask("conv-26", { question: "What did Caroline research?" });
 * } catch (e) {
 *   if (e instanceof EpicacheApiError && e.code === "no_active_version") await client.triggerRebuild(…);
 *   else throw e;
 * }
 * ```
 */
export class EpicacheApiError extends Error {
  /**
   * The HTTP status: the response's; for an `error` event of a stream (whose response was a 200),
   * the status its code has as a JSON answer (503 for `runner_unavailable`).
   */
  readonly status: number;
  readonly code: ApiErrorCode;
  /** The request's id (the body's, else the `x-request-id` header's; "" when neither came): quote it when asking about a failure. */
  readonly requestId: string;
  /** `retry-after` of a 429 `rate_limited`, in seconds. */
  readonly retryAfterSeconds: number | undefined;

  constructor(fields: {
    status: number;
    code: ApiErrorCode;
    message: string;
    requestId: string;
    retryAfterSeconds?: number;
  }) {
    super(fields.message);
    this.name = "EpicacheApiError";
    this.status = fields.status;
    this.code = fields.code;
    this.requestId = fields.requestId;
    this.retryAfterSeconds = fields.retryAfterSeconds;
  }
}

/** The status the API answers `code` with (500 for a code this client does not know). */
export function statusOfCode(code: string): number {
  return Object.hasOwn(ERROR_CODES, code) ? ERROR_CODES[code as ErrorCode] : 500;
}

/**
 * A rebuild {@link EpicacheClient.waitForRebuild} waited for that failed (`reason: "failed"`, with
 * the rebuild's error code and message), or that had not finished when the wait timed out
 * (`reason: "timeout"`, code `timeout`).
 */
export class EpicacheRebuildError extends Error {
  readonly reason: "failed" | "timeout";
  readonly code: string;
  /** The rebuild's version (null on a timeout before any rebuild was seen). */
  readonly version: string | null;
  /** The conversation as last read. */
  readonly conversation: Conversation;

  constructor(
    reason: "failed" | "timeout",
    conversation: Conversation,
    rebuild: RebuildState | null,
    message: string,
  ) {
    super(message);
    this.name = "EpicacheRebuildError";
    this.reason = reason;
    this.code = reason === "failed" ? (rebuild?.error?.code ?? "internal") : "timeout";
    this.version = rebuild?.version ?? null;
    this.conversation = conversation;
  }
}

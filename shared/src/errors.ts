import type { ZodError } from "zod";

/**
 * Error codes that cross package and process boundaries. A code is a stable string: clients and the
 * edge–runner protocol match on it, never on `instanceof` or on the message.
 *
 * @example
 * ```ts
 * throw new EpicacheError("gguf_truncated", "model.gguf ends at byte 120 inside tensor info 3");
 * // → HTTP layers map `error.code` to a status with {@link httpStatusOf}.
 * ```
 */
export const ERROR_CODES = {
  // input
  invalid_argument: 400,
  invalid_json: 400,
  /** A request without a valid signature or credentials. */
  unauthorized: 401,
  /** A request body over the configured size. */
  payload_too_large: 413,
  /** A request body in a media type the route does not take (the API takes `application/json`). */
  unsupported_media_type: 415,
  /** No such job, route or resource. */
  not_found: 404,
  /** The work queue is full; retry later. */
  queue_full: 503,
  // the edge's API
  /** A webhook without a valid Standard Webhooks signature (missing, forged, or outside the tolerance). */
  webhook_invalid: 401,
  /** The conversation has no active episode version yet: send a rebuild webhook and wait for it. */
  no_active_version: 409,
  /** The conversation has no messages, so there is nothing to build from. */
  conversation_empty: 409,
  /** A tenant's limit (conversations, messages per conversation) would be exceeded. */
  limit_exceeded: 403,
  /** Too many requests for the tenant in the current minute; retry after the `retry-after` seconds. */
  rate_limited: 429,
  /** No runner answered (every configured runner failed or timed out); retry later. */
  runner_unavailable: 503,
  /** A runner answered with something that does not follow the runner API. */
  runner_invalid: 502,
  /** Workers AI did not embed the question (it failed, or answered something else); retry later. */
  embedder_unavailable: 503,
  /** A conversation file (LoCoMo JSON, REALTALK JSON, JSONL) that is malformed; the message names the place. */
  conversation_invalid: 400,
  // models and files
  /** No model where it was looked for (a path, the model cache); the message says how to get it. */
  model_not_found: 404,
  /**
   * A model other than the one asked for: its fingerprint differs from the one a manifest (or an
   * evaluation) records, so its caches would be read with the wrong weights.
   */
  model_mismatch: 409,
  /**
   * An update cannot continue its base version (none, another model or build, a new speaker, drift,
   * growth): the message says why; send the whole transcript for a full build.
   */
  base_unusable: 409,
  model_checksum_mismatch: 422,
  model_fetch_failed: 502,
  tool_missing: 500,
  gguf_invalid: 422,
  gguf_truncated: 422,
  gguf_unsupported: 422,
  /** A Hugging Face checkpoint (safetensors, config.json) that is malformed or truncated. */
  model_invalid: 422,
  tokenizer_invalid: 422,
  model_unsupported: 422,
  // stored episode caches
  /** No episode caches where they were looked for. */
  store_not_found: 404,
  /** A stored manifest or cache that is malformed, truncated or for another model. */
  store_invalid: 422,
  /** A conditional write lost: the object changed (or appeared) since it was read. */
  store_conflict: 409,
  /** The object store failed or timed out; the operation may be retried. */
  store_unavailable: 503,
  // runtime
  runtime_failed: 500,
  internal: 500,
} as const;

/** One of the stable error codes of {@link ERROR_CODES}. */
export type ErrorCode = keyof typeof ERROR_CODES;

/**
 * An error with a stable {@link ErrorCode}. Expected outcomes are values; this is for input that cannot
 * be used and for broken invariants.
 *
 * @example
 * ```ts
 * try { parse(bytes) } catch (e) { if (isEpicacheError(e) && e.code === "gguf_truncated") … }
 * ```
 */
export class EpicacheError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "EpicacheError";
    this.code = code;
  }

  /** The error as JSON, `{error: {code, message}}` (HTTP surfaces answer {@link errorBody}, with the request id). */
  toJSON(): { error: { code: ErrorCode; message: string } } {
    return { error: { code: this.code, message: this.message } };
  }
}

/**
 * True when `e` carries one of our codes (also across realms, where `instanceof` fails).
 *
 * @example
 * ```ts
 * isEpicacheError(new EpicacheError("internal", "x")); // true
 * ```
 */
export function isEpicacheError(e: unknown): e is EpicacheError {
  return (
    typeof e === "object" &&
    e !== null &&
    typeof (e as { code?: unknown }).code === "string" &&
    (e as { code: string }).code in ERROR_CODES
  );
}

/**
 * The HTTP status for a code.
 *
 * @example
 * ```ts
 * httpStatusOf("invalid_argument"); // 400
 * ```
 */
export function httpStatusOf(code: ErrorCode): number {
  return ERROR_CODES[code];
}

/**
 * A fixed text per code: what a client is told when the error's own message may hold what it must
 * not see (a runner's URL or answer, an object store's reply, an exception's text). HTTP surfaces
 * answer it for every 5xx, and for errors that report an upstream's failure; the error's own
 * message goes to their log, under the request id.
 */
export const PUBLIC_MESSAGES: Record<ErrorCode, string> = {
  invalid_argument: "the request is not valid",
  invalid_json: "the request body is not JSON",
  unauthorized: "missing or invalid credentials",
  payload_too_large: "the request or the transcript is too large",
  unsupported_media_type: "send the request body as application/json",
  not_found: "not found",
  queue_full: "too much work is queued; try again shortly",
  webhook_invalid: "the webhook's signature is missing, invalid or too old",
  no_active_version:
    "the conversation has no active version yet: send a rebuild webhook and wait for it to succeed",
  conversation_empty: "the conversation has no messages to build from",
  limit_exceeded: "this would pass a limit of the tenant",
  rate_limited: "too many requests this minute; retry after the retry-after seconds",
  runner_unavailable: "no runner could answer; try again shortly",
  runner_invalid: "a runner answered with something that could not be used; try again shortly",
  embedder_unavailable: "the question could not be embedded; try again shortly",
  conversation_invalid: "the transcript holds a message that cannot be built from",
  model_not_found: "a model the service needs is missing",
  model_mismatch:
    "the version was built with another model than the one served: it needs a rebuild",
  base_unusable: "the update cannot continue its base version: it needs a full build",
  model_checksum_mismatch: "a model file failed its checksum",
  model_fetch_failed: "a model could not be fetched; try again later",
  tool_missing: "a tool the service needs is missing",
  gguf_invalid: "a model file is not valid",
  gguf_truncated: "a model file is truncated",
  gguf_unsupported: "a model file is not supported",
  model_invalid: "a model checkpoint is not valid",
  tokenizer_invalid: "a model's tokenizer is not valid",
  model_unsupported: "a model is not supported",
  store_not_found: "the version's episode caches were not found: it needs a rebuild",
  store_invalid: "the version's episode caches could not be read: it needs a rebuild",
  store_conflict: "the episode store changed meanwhile; try again",
  store_unavailable: "the episode store did not answer; try again shortly",
  runtime_failed: "the model failed to run; try again shortly",
  internal: "internal error; try again, and quote the request id if it persists",
};

/** The header that carries a request's id: taken from the request when well-formed, always answered. */
export const X_REQUEST_ID = "x-request-id";

/** The JSON error body of every HTTP surface. */
export interface ErrorBody {
  error: { code: ErrorCode; message: string; requestId: string };
}

/**
 * The error body for `code`, with the request id that the surface's log lines carry too.
 *
 * @example
 * ```ts
 * errorBody("runner_unavailable", PUBLIC_MESSAGES.runner_unavailable, "8f0c…");
 * // {error: {code: "runner_unavailable", message: "no runner could answer; try again shortly", requestId: "8f0c…"}}
 * ```
 */
export function errorBody(code: ErrorCode, message: string, requestId: string): ErrorBody {
  return { error: { code, message, requestId } };
}

/**
 * `invalid_argument` naming the first five issues of a request that fails its schema
 * (`messages.0.speaker: …`, `body: …` for the body itself): what the edge and the runner answer.
 *
 * @example
 * ```ts
 * const parsed = EmbedRequest.safeParse(body);
 * if (!parsed.success) throw validationError(parsed.error);
 * // EpicacheError invalid_argument "texts: Invalid input: expected array, received string"
 * ```
 */
export function validationError(error: ZodError): EpicacheError {
  const issues = error.issues.slice(0, 5).map((i) => `${i.path.join(".") || "body"}: ${i.message}`);
  return new EpicacheError("invalid_argument", issues.join("; "));
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * The first of `candidates` that is a well-formed request id (1 to 128 letters, digits, `.`, `_`,
 * `:` or `-`: safe to log and to echo), else a new random one.
 *
 * @example
 * ```ts
 * const requestId = requestIdFrom([req.header("cf-ray"), req.header("x-request-id")]);
 * ```
 */
export function requestIdFrom(candidates: readonly (string | null | undefined)[]): string {
  return (
    candidates.find((c): c is string => typeof c === "string" && REQUEST_ID.test(c)) ??
    crypto.randomUUID()
  );
}

/** What a log line says of a thrown value: its name, message and stack, or the value itself. */
export function describeError(e: unknown): unknown {
  if (e instanceof Error)
    return {
      name: e.name,
      message: e.message,
      stack: e.stack,
      ...(e.cause === undefined ? {} : { cause: describeError(e.cause) }),
    };
  return e;
}

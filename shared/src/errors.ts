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

  /** The JSON error body every HTTP surface returns: `{error: {code, message}}`. */
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

/**
 * Signatures on requests between the edge and the runner (both ways: the edge's calls to the runner,
 * the runner's completion callbacks to the edge). HMAC-SHA256 with a shared secret over
 *
 *   method "\n" path-with-query "\n" timestamp "\n" request id "\n" body
 *
 * sent as headers: `x-epicache-timestamp` (Unix seconds), `x-epicache-request-id` (unique per request:
 * the receiver remembers ids for the tolerance window, so a replay is refused), and
 * `x-epicache-signature: v1=<hex>`. Web Crypto only, so the Worker and Node share it.
 */
import { EpicacheError } from "../errors";

export const SIGNATURE_HEADER = "x-epicache-signature";
export const TIMESTAMP_HEADER = "x-epicache-timestamp";
export const REQUEST_ID_HEADER = "x-epicache-request-id";
/** How far a timestamp may be from the receiver's clock, in seconds. */
export const SIGNATURE_TOLERANCE_SECONDS = 300;

const encoder = new TextEncoder();

/** The parts of a request that are signed. */
export interface SignedParts {
  method: string;
  /** Path and query, as sent (`/v1/jobs/abc?x=1`). */
  path: string;
  /** Unix seconds. */
  timestamp: number;
  requestId: string;
  body: Uint8Array | string;
}

async function hmacHex(secret: string, parts: SignedParts): Promise<string> {
  const key = await crypto.subtle.importKey(
    "raw",
    encoder.encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const head = encoder.encode(
    `${parts.method.toUpperCase()}\n${parts.path}\n${parts.timestamp}\n${parts.requestId}\n`,
  );
  const body = typeof parts.body === "string" ? encoder.encode(parts.body) : parts.body;
  const message = new Uint8Array(head.length + body.length);
  message.set(head, 0);
  message.set(body, head.length);
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, message));
  return Array.from(mac, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * The three headers that sign a request.
 *
 * @example
 * ```ts
 * const headers = await signRequest(secret, { method: "POST", path: "/v1/embed", timestamp: Math.floor(Date.now() / 1000), requestId: crypto.randomUUID(), body });
 * await fetch(runner + "/v1/embed", { method: "POST", headers: { ...headers, "content-type": "application/json" }, body });
 * ```
 */
export async function signRequest(
  secret: string,
  parts: SignedParts,
): Promise<Record<string, string>> {
  return {
    [TIMESTAMP_HEADER]: String(parts.timestamp),
    [REQUEST_ID_HEADER]: parts.requestId,
    [SIGNATURE_HEADER]: `v1=${await hmacHex(secret, parts)}`,
  };
}

/** What a receiver checks a signature against. */
export interface VerifyOptions {
  /** Unix seconds now. */
  now: number;
  toleranceSeconds?: number;
  /** True when the request id was seen within the tolerance window (a replay); records it otherwise. */
  seen?: (requestId: string) => boolean;
}

/**
 * Checks a request's signature headers; `unauthorized` (401) naming what is wrong otherwise: missing
 * headers, a timestamp outside the tolerance, a signature that does not match, a replayed request id.
 *
 * @example
 * ```ts
 * await verifyRequest(secret, { method, path, body }, (name) => req.header(name), { now: Date.now() / 1000, seen });
 * ```
 */
export async function verifyRequest(
  secret: string,
  request: { method: string; path: string; body: Uint8Array | string },
  header: (name: string) => string | null | undefined,
  options: VerifyOptions,
): Promise<void> {
  const deny = (why: string): never => {
    throw new EpicacheError("unauthorized", why);
  };
  const stamp = header(TIMESTAMP_HEADER);
  const requestId = header(REQUEST_ID_HEADER);
  const signature = header(SIGNATURE_HEADER);
  if (!stamp || !requestId || !signature)
    deny(
      `unsigned request: ${TIMESTAMP_HEADER}, ${REQUEST_ID_HEADER} and ${SIGNATURE_HEADER} are required`,
    );
  if (!/^\d{1,12}$/.test(stamp as string)) deny(`${TIMESTAMP_HEADER} is not Unix seconds`);
  if (!/^[A-Za-z0-9_-]{8,128}$/.test(requestId as string))
    deny(`${REQUEST_ID_HEADER} must be 8 to 128 letters, digits, '-' or '_'`);
  const timestamp = Number(stamp);
  const tolerance = options.toleranceSeconds ?? SIGNATURE_TOLERANCE_SECONDS;
  if (Math.abs(options.now - timestamp) > tolerance)
    deny(
      `stale request: its timestamp is ${Math.round(options.now - timestamp)} s from this clock (tolerance ${tolerance} s)`,
    );
  const expected = `v1=${await hmacHex(secret, { ...request, timestamp, requestId: requestId as string })}`;
  if (!constantTimeEqual(expected, signature as string)) deny("the signature does not match");
  if (options.seen?.(requestId as string))
    deny(`replayed request: ${REQUEST_ID_HEADER} ${requestId} was already used`);
}

/**
 * String equality whose time does not depend on where the strings differ.
 *
 * @example
 * ```ts
 * constantTimeEqual("v1=ab", "v1=ab"); // true
 * ```
 */
export function constantTimeEqual(a: string, b: string): boolean {
  const x = encoder.encode(a),
    y = encoder.encode(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < Math.max(x.length, y.length); i++)
    diff |= (x[i % x.length] ?? 0) ^ (y[i % y.length] ?? 0);
  return diff === 0;
}

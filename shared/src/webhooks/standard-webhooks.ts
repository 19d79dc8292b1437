/**
 * Standard Webhooks (https://www.standardwebhooks.com): how a tenant signs the webhooks it sends
 * the edge, and how the edge checks them. Three headers:
 *
 *   webhook-id         unique per message; the receiver processes an id once (retries reuse it)
 *   webhook-timestamp  Unix seconds; refused when more than 5 minutes from the receiver's clock
 *   webhook-signature  space-separated `v1,<base64>` entries (several during a secret rotation)
 *
 * The signature is the base64 HMAC-SHA256 of `${id}.${timestamp}.${body}`, keyed with the bytes of
 * the secret's base64 part (`whsec_<base64>`). Web Crypto only, so it runs in the Worker and in Node.
 */
import { EpicacheError } from "../errors";
import { constantTimeEqual } from "../runner-api/signature";

export const WEBHOOK_ID_HEADER = "webhook-id";
export const WEBHOOK_TIMESTAMP_HEADER = "webhook-timestamp";
export const WEBHOOK_SIGNATURE_HEADER = "webhook-signature";
/** How far `webhook-timestamp` may be from the receiver's clock, in seconds. */
export const WEBHOOK_TOLERANCE_SECONDS = 300;
const SECRET_PREFIX = "whsec_";

const encoder = new TextEncoder();

function toBase64(bytes: Uint8Array): string {
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
}

function fromBase64(text: string): Uint8Array<ArrayBuffer> {
  const binary = atob(text);
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

/**
 * A new webhook secret: `whsec_` and the base64 of 32 random bytes.
 *
 * @example
 * ```ts
 * newWebhookSecret(); // "whsec_Jm3…="
 * ```
 */
export function newWebhookSecret(): string {
  return SECRET_PREFIX + toBase64(crypto.getRandomValues(new Uint8Array(32)));
}

async function signatureOf(
  secret: string,
  id: string,
  timestamp: number,
  body: string,
): Promise<string> {
  let keyBytes: Uint8Array<ArrayBuffer>;
  try {
    keyBytes = fromBase64(
      secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret,
    );
  } catch {
    throw new EpicacheError("invalid_argument", "a webhook secret is `whsec_` followed by base64");
  }
  const key = await crypto.subtle.importKey(
    "raw",
    keyBytes,
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  return toBase64(
    new Uint8Array(
      await crypto.subtle.sign("HMAC", key, encoder.encode(`${id}.${timestamp}.${body}`)),
    ),
  );
}

/** What a webhook sender signs. */
export interface WebhookMessage {
  /** The `webhook-id`: unique per message, reused by retries of it. */
  id: string;
  /** Unix seconds. */
  timestamp: number;
  /** The exact body sent. */
  body: string;
}

/**
 * The three Standard Webhooks headers for a message, signed with `secret` (`whsec_…`).
 *
 * @example
 * ```ts
 * const body = JSON.stringify({ conversationId: "conv-26" });
 * const headers = await signWebhook(secret, { id: crypto.randomUUID(), timestamp: Math.floor(Date.now() / 1000), body });
 * await fetch(`${edge}/v1/webhooks/${tenantId}/rebuild`, { method: "POST", headers: { ...headers, "content-type": "application/json" }, body });
 * ```
 */
export async function signWebhook(
  secret: string,
  message: WebhookMessage,
): Promise<Record<string, string>> {
  return {
    [WEBHOOK_ID_HEADER]: message.id,
    [WEBHOOK_TIMESTAMP_HEADER]: String(message.timestamp),
    [WEBHOOK_SIGNATURE_HEADER]: `v1,${await signatureOf(secret, message.id, message.timestamp, message.body)}`,
  };
}

/**
 * Checks a webhook's Standard Webhooks headers against `secret`, returning its id and timestamp;
 * `webhook_invalid` (401) naming what is wrong otherwise: a missing header, a timestamp outside the
 * tolerance, no `v1,` signature that matches. Replays within the tolerance are the caller's to
 * refuse, by remembering the returned id.
 *
 * @example
 * ```ts
 * const { id } = await verifyWebhook(tenant.webhookSecret, (n) => c.req.header(n), body, { now: Date.now() / 1000 });
 * if (await alreadySeen(tenant.id, id)) return c.json({ duplicate: true }, 200);
 * ```
 */
export async function verifyWebhook(
  secret: string,
  header: (name: string) => string | null | undefined,
  body: string,
  options: { now: number; toleranceSeconds?: number },
): Promise<{ id: string; timestamp: number }> {
  const deny = (why: string): never => {
    throw new EpicacheError("webhook_invalid", why);
  };
  const id = header(WEBHOOK_ID_HEADER);
  const stamp = header(WEBHOOK_TIMESTAMP_HEADER);
  const signatures = header(WEBHOOK_SIGNATURE_HEADER);
  if (!id || !stamp || !signatures)
    deny(
      `unsigned webhook: ${WEBHOOK_ID_HEADER}, ${WEBHOOK_TIMESTAMP_HEADER} and ${WEBHOOK_SIGNATURE_HEADER} are required`,
    );
  if ((id as string).length > 256) deny(`${WEBHOOK_ID_HEADER} is longer than 256 characters`);
  if (!/^\d{1,12}$/.test(stamp as string)) deny(`${WEBHOOK_TIMESTAMP_HEADER} is not Unix seconds`);
  const timestamp = Number(stamp);
  const tolerance = options.toleranceSeconds ?? WEBHOOK_TOLERANCE_SECONDS;
  if (Math.abs(options.now - timestamp) > tolerance) {
    deny(
      `stale webhook: its timestamp is ${Math.round(options.now - timestamp)} s from this clock (tolerance ${tolerance} s)`,
    );
  }
  const expected = await signatureOf(secret, id as string, timestamp, body);
  let matched = false;
  for (const entry of (signatures as string).split(" ")) {
    const comma = entry.indexOf(",");
    if (comma < 0 || entry.slice(0, comma) !== "v1") continue;
    // Every candidate is compared (no early exit), each in constant time.
    if (constantTimeEqual(entry.slice(comma + 1), expected)) matched = true;
  }
  if (!matched) deny("no v1 signature matches");
  return { id: id as string, timestamp };
}

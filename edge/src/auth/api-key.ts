/**
 * API keys: `ek_` and 43 base64url characters (32 random bytes). Only the key's SHA-256 is stored;
 * the lookup is by hash, and the stored hash is compared in constant time.
 */
import { createMiddleware } from "hono/factory";
import { EpicacheError, constantTimeEqual } from "@epicache/shared";
import { findTenantByKeyHash, limitsOf } from "../db/tenants";
import { countRequest } from "../db/rate-limit";
import type { AppEnv } from "../env";

function base64url(bytes: Uint8Array): string {
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** A new API key (shown to the tenant once). */
export function newApiKey(): string {
  return `ek_${base64url(crypto.getRandomValues(new Uint8Array(32)))}`;
}

/** The hex SHA-256 of a key, as stored. */
export async function hashApiKey(key: string): Promise<string> {
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", new TextEncoder().encode(key)),
  );
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The bearer token of a request, or null. */
export function bearerToken(authorization: string | undefined): string | null {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? "");
  return match ? match[1] : null;
}

/**
 * Middleware of the tenant routes: `Authorization: Bearer <api key>` names the tenant (401
 * `unauthorized` otherwise), then the tenant's requests of this minute are counted (429
 * `rate_limited` over its limit).
 */
export const requireTenant = createMiddleware<AppEnv>(async (c, next) => {
  const key = bearerToken(c.req.header("authorization"));
  if (key === null)
    throw new EpicacheError(
      "unauthorized",
      "missing API key: send Authorization: Bearer <api key>",
    );
  const hash = await hashApiKey(key);
  const found = await findTenantByKeyHash(c.env.DB, hash);
  if (found === null || !constantTimeEqual(found.keyHash, hash))
    throw new EpicacheError("unauthorized", "unknown API key");
  const limit = limitsOf(found.tenant, c.var.config.limits).requestsPerMinute;
  const now = Date.now() / 1000;
  const count = await countRequest(c.env.DB, found.tenant.id, now);
  if (count > limit) {
    c.header("retry-after", String(60 - (Math.floor(now) % 60)));
    throw new EpicacheError(
      "rate_limited",
      `more than ${limit} requests this minute for this tenant`,
    );
  }
  c.set("tenant", found.tenant);
  await next();
});

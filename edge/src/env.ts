/**
 * The Worker's environment: the bindings of wrangler.toml (the generated `Env` of
 * worker-configuration.d.ts), its two secrets, and the typed configuration read from its vars.
 */
import { EpicacheError, RUNNER_LIMITS } from "@epicache/shared";
import type { Tenant, TenantLimits } from "./db/tenants";

declare global {
  // wrangler types declares the bindings in this namespace: secrets join them here.
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Cloudflare {
    // Secrets are not in wrangler.toml, so `wrangler types` cannot see them (`wrangler secret put`,
    // or `.dev.vars` locally).
    interface Env {
      /** The edge–runner signing secret (the runner's EPICACHE_RUNNER_SECRET). */
      RUNNER_SECRET: string;
      /** The bearer token of the admin routes. */
      ADMIN_TOKEN: string;
    }
  }
}

/** The configuration of one request, from the Worker's vars and secrets. */
export interface EdgeConfig {
  runnerUrls: string[];
  publicUrl: string;
  runnerSecret: string;
  adminToken: string;
  runnerTimeoutMs: number;
  limits: TenantLimits;
  maxMessageChars: number;
  maxMessagesPerRequest: number;
  maxRequestBytes: number;
  /** A conversation's transcript, in bytes of a rebuild's body (db/messages.ts, messageBytes). */
  maxTranscriptBytes: number;
}

/**
 * What a rebuild request's body holds besides its messages: ids, the base, the config and the
 * callback URL take a few hundred bytes; the rest is room to spare.
 */
export const REBUILD_ENVELOPE_BYTES = 64 << 10;

/**
 * The largest transcript a full rebuild can send: a runner's default body limit
 * (RUNNER_LIMITS.bodyBytes, 16 MiB) less the envelope. MAX_TRANSCRIPT_BYTES may lower it (for
 * runners given a smaller EPICACHE_RUNNER_MAX_BODY_BYTES), never raise it.
 */
export const MAX_TRANSCRIPT_BYTES = RUNNER_LIMITS.bodyBytes - REBUILD_ENVELOPE_BYTES;

/** Hono's environment for the app: the bindings and what middleware sets. */
export interface AppEnv {
  Bindings: Env;
  /** `requestId`: the request's id (app.ts), in its error body, its `x-request-id` header and its log lines. */
  Variables: { config: EdgeConfig; tenant: Tenant; requestId: string };
}

/** A positive integer var, at most `max` (what a runner takes) when given. */
function positiveInt(
  env: Env,
  name: keyof Env,
  fallback: number,
  max?: { value: number; why: string },
): number {
  const raw = env[name] as unknown;
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1)
    throw new EpicacheError(
      "internal",
      `the Worker's var ${String(name)} is ${JSON.stringify(raw)}: a positive integer is needed`,
    );
  if (max !== undefined && value > max.value)
    throw new EpicacheError(
      "internal",
      `the Worker's var ${String(name)} is ${value}: at most ${max.value}, ${max.why}`,
    );
  return value;
}

/**
 * The typed configuration of `env`: defaults for unset vars; a var that is set but unusable (or a
 * missing secret) is an `internal` error naming it.
 *
 * @example
 * ```ts
 * const { runnerUrls, limits } = readConfig(c.env);
 * ```
 */
export function readConfig(env: Env): EdgeConfig {
  const runnerUrls = (env.RUNNER_URLS ?? "http://127.0.0.1:8788")
    .split(",")
    .map((u) => u.trim().replace(/\/+$/, ""))
    .filter((u) => u !== "");
  for (const url of runnerUrls) {
    if (!/^https?:\/\/[^/]+$/.test(url))
      throw new EpicacheError(
        "internal",
        `RUNNER_URLS holds ${JSON.stringify(url)}: each entry is an http(s) origin such as http://127.0.0.1:8788`,
      );
  }
  if (runnerUrls.length === 0) throw new EpicacheError("internal", "RUNNER_URLS names no runner");
  if (!env.RUNNER_SECRET)
    throw new EpicacheError(
      "internal",
      "the RUNNER_SECRET secret is not set (wrangler secret put RUNNER_SECRET, or .dev.vars locally)",
    );
  if (!env.ADMIN_TOKEN)
    throw new EpicacheError(
      "internal",
      "the ADMIN_TOKEN secret is not set (wrangler secret put ADMIN_TOKEN, or .dev.vars locally)",
    );
  return {
    runnerUrls,
    publicUrl: (env.EDGE_PUBLIC_URL || "http://127.0.0.1:8787").replace(/\/+$/, ""),
    runnerSecret: env.RUNNER_SECRET,
    adminToken: env.ADMIN_TOKEN,
    runnerTimeoutMs: positiveInt(env, "RUNNER_TIMEOUT_MS", 30_000),
    limits: {
      maxConversations: positiveInt(env, "MAX_CONVERSATIONS", 1000),
      maxMessagesPerConversation: positiveInt(env, "MAX_MESSAGES_PER_CONVERSATION", 50_000, {
        value: RUNNER_LIMITS.messages,
        why: "the messages a runner's rebuild takes",
      }),
      requestsPerMinute: positiveInt(env, "REQUESTS_PER_MINUTE", 600),
    },
    maxMessageChars: positiveInt(env, "MAX_MESSAGE_CHARS", 20_000, {
      value: RUNNER_LIMITS.messageChars,
      why: "the characters a runner takes in a message",
    }),
    maxMessagesPerRequest: positiveInt(env, "MAX_MESSAGES_PER_REQUEST", 500),
    maxRequestBytes: positiveInt(env, "MAX_REQUEST_BYTES", 1 << 20),
    maxTranscriptBytes: positiveInt(env, "MAX_TRANSCRIPT_BYTES", MAX_TRANSCRIPT_BYTES, {
      value: MAX_TRANSCRIPT_BYTES,
      why: "what fits in a runner's 16 MiB rebuild body",
    }),
  };
}

/**
 * The Worker's environment: the bindings of wrangler.toml (the generated `Env` of
 * worker-configuration.d.ts), its two secrets, and the typed configuration read from its vars.
 */
import { EpicacheError } from "@epicache/shared";
import type { Tenant, TenantLimits } from "./db/tenants";

declare global {
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
}

/** Hono's environment for the app: the bindings and what middleware sets. */
export interface AppEnv {
  Bindings: Env;
  Variables: { config: EdgeConfig; tenant: Tenant };
}

function positiveInt(env: Env, name: keyof Env, fallback: number): number {
  const raw = env[name] as unknown;
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1) throw new EpicacheError("internal", `the Worker's var ${String(name)} is ${JSON.stringify(raw)}: a positive integer is needed`);
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
  const runnerUrls = (env.RUNNER_URLS ?? "http://127.0.0.1:8788").split(",").map((u) => u.trim().replace(/\/+$/, "")).filter((u) => u !== "");
  for (const url of runnerUrls) {
    if (!/^https?:\/\/[^/]+$/.test(url)) throw new EpicacheError("internal", `RUNNER_URLS holds ${JSON.stringify(url)}: each entry is an http(s) origin such as http://127.0.0.1:8788`);
  }
  if (runnerUrls.length === 0) throw new EpicacheError("internal", "RUNNER_URLS names no runner");
  if (!env.RUNNER_SECRET) throw new EpicacheError("internal", "the RUNNER_SECRET secret is not set (wrangler secret put RUNNER_SECRET, or .dev.vars locally)");
  if (!env.ADMIN_TOKEN) throw new EpicacheError("internal", "the ADMIN_TOKEN secret is not set (wrangler secret put ADMIN_TOKEN, or .dev.vars locally)");
  return {
    runnerUrls,
    publicUrl: (env.EDGE_PUBLIC_URL || "http://127.0.0.1:8787").replace(/\/+$/, ""),
    runnerSecret: env.RUNNER_SECRET,
    adminToken: env.ADMIN_TOKEN,
    runnerTimeoutMs: positiveInt(env, "RUNNER_TIMEOUT_MS", 30_000),
    limits: {
      maxConversations: positiveInt(env, "MAX_CONVERSATIONS", 1000),
      maxMessagesPerConversation: positiveInt(env, "MAX_MESSAGES_PER_CONVERSATION", 50_000),
      requestsPerMinute: positiveInt(env, "REQUESTS_PER_MINUTE", 600),
    },
    maxMessageChars: positiveInt(env, "MAX_MESSAGE_CHARS", 20_000),
    maxMessagesPerRequest: positiveInt(env, "MAX_MESSAGES_PER_REQUEST", 500),
    maxRequestBytes: positiveInt(env, "MAX_REQUEST_BYTES", 1 << 20),
  };
}

/**
 * The runner's configuration: defaults, then a JSON file (`--config FILE` or
 * EPICACHE_RUNNER_CONFIG), then the environment, then command-line overrides; validated once at
 * start-up, every problem named with where its value came from.
 *
 *   field            environment                    default
 *   host             EPICACHE_RUNNER_HOST           127.0.0.1
 *   port             EPICACHE_RUNNER_PORT           8788
 *   secret           EPICACHE_RUNNER_SECRET         generated once into $EPICACHE_HOME/runner-secret
 *   store            EPICACHE_STORE                 $EPICACHE_HOME/store (a directory or s3://bucket/prefix)
 *   chatModel        EPICACHE_CHAT_MODEL            the pulled SmolLM2
 *   numerics         EPICACHE_NUMERICS              fast
 *   executionProvider EPICACHE_EXECUTION_PROVIDER   cpu (or cuda)
 *   maxBodyBytes     EPICACHE_RUNNER_MAX_BODY_BYTES 16 MiB
 *   cacheBytes       EPICACHE_RUNNER_CACHE_BYTES    1 GiB of loaded episode caches
 *   concurrency      EPICACHE_RUNNER_CONCURRENCY    1 model call at a time
 *   queueLimit       EPICACHE_RUNNER_QUEUE_LIMIT    16 rebuild jobs queued or running
 *   gcGraceSeconds   EPICACHE_RUNNER_GC_GRACE       3600
 *   build            (file only)                    method epicache, episodes 4, budget 1024, block 512, dtype f16,
 *                                                   routing lexical (shared DEFAULT_ROUTING)
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { z } from "zod";
import { BuildConfig, EpicacheError, RUNNER_LIMITS } from "@epicache/shared";
import { epicacheHome } from "../paths";
import { defaultStoreLocation } from "../store";

export const RunnerConfigSchema = z
  .object({
    host: z.string().min(1),
    port: z.number().int().min(0).max(65535),
    secret: z.string().min(16, "must be at least 16 characters"),
    store: z.string().min(1),
    chatModel: z.string().min(1).optional(),
    numerics: z.enum(["fast", "exact", "ggml"]),
    executionProvider: z.enum(["cpu", "cuda"]),
    maxBodyBytes: z.number().int().min(1024),
    cacheBytes: z.number().int().min(0),
    concurrency: z.number().int().min(1).max(64),
    queueLimit: z.number().int().min(1).max(10_000),
    gcGraceSeconds: z.number().min(0),
    build: BuildConfig.required({
      method: true,
      episodes: true,
      budget: true,
      block: true,
      dtype: true,
    }),
  })
  .strict();
export type RunnerConfig = z.infer<typeof RunnerConfigSchema>;

const ENV: Array<[keyof RunnerConfig, string, "string" | "number"]> = [
  ["host", "EPICACHE_RUNNER_HOST", "string"],
  ["port", "EPICACHE_RUNNER_PORT", "number"],
  ["secret", "EPICACHE_RUNNER_SECRET", "string"],
  ["store", "EPICACHE_STORE", "string"],
  ["chatModel", "EPICACHE_CHAT_MODEL", "string"],
  ["numerics", "EPICACHE_NUMERICS", "string"],
  ["executionProvider", "EPICACHE_EXECUTION_PROVIDER", "string"],
  ["maxBodyBytes", "EPICACHE_RUNNER_MAX_BODY_BYTES", "number"],
  ["cacheBytes", "EPICACHE_RUNNER_CACHE_BYTES", "number"],
  ["concurrency", "EPICACHE_RUNNER_CONCURRENCY", "number"],
  ["queueLimit", "EPICACHE_RUNNER_QUEUE_LIMIT", "number"],
  ["gcGraceSeconds", "EPICACHE_RUNNER_GC_GRACE", "number"],
];

export interface LoadConfigOptions {
  env?: NodeJS.ProcessEnv;
  /** A JSON file of fields (`--config`); EPICACHE_RUNNER_CONFIG otherwise. */
  file?: string;
  /** Command-line values, applied last. */
  overrides?: Partial<RunnerConfig>;
}

/**
 * The validated configuration. With no secret configured, one is generated once and kept in
 * `$EPICACHE_HOME/runner-secret` (mode 0600), so a local edge can read the same one.
 */
export function loadRunnerConfig(options: LoadConfigOptions = {}): RunnerConfig {
  const env = options.env ?? process.env;
  const from = new Map<string, string>();
  const raw: Record<string, unknown> = {
    host: "127.0.0.1",
    port: 8788,
    store: defaultStoreLocation(env),
    numerics: "fast",
    executionProvider: "cpu",
    maxBodyBytes: RUNNER_LIMITS.bodyBytes,
    cacheBytes: 1 << 30,
    concurrency: 1,
    queueLimit: 16,
    gcGraceSeconds: 3600,
    build: { method: "epicache", episodes: 4, budget: 1024, block: 512, dtype: "f16" },
  };
  for (const k of Object.keys(raw)) from.set(k, "the default");
  const file = options.file ?? (env.EPICACHE_RUNNER_CONFIG || undefined);
  if (file !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(file, "utf8"));
    } catch (e) {
      throw new EpicacheError("invalid_argument", `runner config ${file}: ${(e as Error).message}`);
    }
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
      throw new EpicacheError("invalid_argument", `runner config ${file}: not a JSON object`);
    for (const [k, v] of Object.entries(parsed)) {
      raw[k] =
        k === "build" && typeof v === "object" && v !== null
          ? { ...(raw.build as object), ...v }
          : v;
      from.set(k, file);
    }
  }
  for (const [key, name, type] of ENV) {
    const value = env[name];
    if (value === undefined || value === "") continue;
    raw[key] = type === "number" && /^\s*-?\d+(\.\d+)?\s*$/.test(value) ? Number(value) : value;
    from.set(key, name);
  }
  for (const [k, v] of Object.entries(options.overrides ?? {})) {
    if (v === undefined) continue;
    raw[k] = v;
    from.set(k, "the command line");
  }
  if (raw.secret === undefined) {
    raw.secret = localSecret(env);
    from.set("secret", secretPath(env));
  }
  const result = RunnerConfigSchema.safeParse(raw);
  if (!result.success) {
    const problems = result.error.issues.map((i) => {
      const key = String(i.path[0] ?? "");
      const shown =
        key === "secret"
          ? ""
          : ` (got ${JSON.stringify(i.path.reduce<unknown>((o, p) => (o as Record<PropertyKey, unknown>)?.[p], raw))})`;
      return `${i.path.join(".") || "config"} from ${from.get(key) ?? "the config"}: ${i.message}${shown}`;
    });
    throw new EpicacheError(
      "invalid_argument",
      `runner configuration:\n  ${problems.join("\n  ")}`,
    );
  }
  return result.data;
}

export function secretPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(epicacheHome(env), "runner-secret");
}

function localSecret(env: NodeJS.ProcessEnv): string {
  const path = secretPath(env);
  if (existsSync(path)) return readFileSync(path, "utf8").trim();
  mkdirSync(dirname(path), { recursive: true });
  const secret = randomBytes(32).toString("hex");
  writeFileSync(path, `${secret}\n`, { mode: 0o600 });
  return secret;
}

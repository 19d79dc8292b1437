/**
 * The whole stack on one machine (`npm start`, docs/design.md §6): the runner in this process (filesystem
 * store under .epicache/store, 127.0.0.1:8788) and the edge under `wrangler dev` (workerd with local
 * D1, its migrations applied first, and local Queues; 127.0.0.1:8787), sharing the signing secret.
 * Questions are embedded through the runner (no Workers AI locally). Wrangler's state lives in
 * `.epicache/wrangler` (EPICACHE_EDGE_STATE) so that the conversations survive a restart.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { EpicacheError } from "@epicache/shared";
import { pullDefaults } from "../../gpu-runner/src/model-registry";
import { epicacheHome, REPO_ROOT } from "../../gpu-runner/src/paths";
import { loadRunnerConfig, startRunner, type RunningRunner } from "../../gpu-runner/src/server";

export interface StackOptions {
  runnerPort?: number;
  edgePort?: number;
  log?: (m: string) => void;
}

export interface RunningStack {
  runner: RunningRunner;
  edgeUrl: string;
  adminToken: string;
  close(): Promise<void>;
}

/** `EPICACHE_ADMIN_TOKEN`, or one generated once and kept in `.epicache/admin-token`. */
export function adminToken(env: NodeJS.ProcessEnv = process.env): string {
  if (env.EPICACHE_ADMIN_TOKEN) return env.EPICACHE_ADMIN_TOKEN;
  const path = join(epicacheHome(env), "admin-token");
  if (existsSync(path)) return readFileSync(path, "utf8").trim();
  mkdirSync(epicacheHome(env), { recursive: true });
  const token = `adm_${randomBytes(24).toString("hex")}`;
  writeFileSync(path, `${token}\n`, { mode: 0o600 });
  return token;
}

function wranglerBin(): string {
  const require = createRequire(join(REPO_ROOT, "edge", "package.json"));
  return join(require.resolve("wrangler/package.json"), "..", "bin", "wrangler.js");
}

export interface EdgeDevOptions {
  runnerUrl: string;
  secret: string;
  adminToken: string;
  port: number;
  /** Wrangler's local state (D1, queues); the env file goes there too. */
  stateDir: string;
}

export interface RunningEdge {
  url: string;
  close(): Promise<void>;
}

/** The edge under `wrangler dev` with local D1 (migrations applied first) and Queues, talking to `runnerUrl`. */
export async function startEdgeDev(o: EdgeDevOptions): Promise<RunningEdge> {
  const url = `http://127.0.0.1:${o.port}`;
  const envFile = join(o.stateDir, "edge.env");
  mkdirSync(o.stateDir, { recursive: true });
  // The edge's secrets and the URLs that tie the two together, for wrangler dev only.
  writeFileSync(
    envFile,
    [
      `RUNNER_SECRET=${o.secret}`,
      `ADMIN_TOKEN=${o.adminToken}`,
      `RUNNER_URLS=${o.runnerUrl}`,
      `EDGE_PUBLIC_URL=${url}`,
      "",
    ].join("\n"),
    { mode: 0o600 },
  );
  const wrangler = wranglerBin();
  const migrate = spawnSync(
    process.execPath,
    [wrangler, "d1", "migrations", "apply", "DB", "--local", "--persist-to", o.stateDir],
    {
      cwd: REPO_ROOT,
      encoding: "utf8",
      env: { ...process.env, CI: "1" },
    },
  );
  if (migrate.status !== 0)
    throw new EpicacheError(
      "internal",
      `applying the D1 migrations failed:\n${migrate.stdout}\n${migrate.stderr}`,
    );
  const edge: ChildProcess = spawn(
    process.execPath,
    [
      wrangler,
      "dev",
      "--local",
      "--ip",
      "127.0.0.1",
      "--port",
      String(o.port),
      "--persist-to",
      o.stateDir,
      "--env-file",
      envFile,
      "--var",
      `RUNNER_URLS:${o.runnerUrl}`,
      "--var",
      `EDGE_PUBLIC_URL:${url}`,
      "--show-interactive-dev-session=false",
      "--log-level",
      "warn",
    ],
    { cwd: REPO_ROOT, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, CI: "1" } },
  );
  let output = "";
  const keep = (d: Buffer) => {
    output = (output + d.toString()).slice(-8000);
  };
  edge.stdout?.on("data", keep);
  edge.stderr?.on("data", keep);
  const close = async () => {
    if (edge.exitCode !== null) return;
    const exited = new Promise((r) => edge.once("exit", r));
    edge.kill("SIGTERM");
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
    if (edge.exitCode === null) edge.kill("SIGKILL");
  };
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (edge.exitCode !== null)
      throw new EpicacheError("internal", `wrangler dev exited (${edge.exitCode}):\n${output}`);
    try {
      const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2000) });
      if (res.ok) break;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) {
      await close();
      throw new EpicacheError(
        "internal",
        `the edge did not answer on ${url} within 120 s:\n${output}`,
      );
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return { url, close };
}

export async function startStack(options: StackOptions = {}): Promise<RunningStack> {
  const log = options.log ?? (() => undefined);
  pullDefaults({ log });
  const config = loadRunnerConfig({ overrides: { port: options.runnerPort } });
  const token = adminToken();
  const port = options.edgePort ?? (Number(process.env.EPICACHE_EDGE_PORT) || 8787);
  const stateDir = process.env.EPICACHE_EDGE_STATE || join(epicacheHome(), "wrangler");
  const runner = await startRunner(config, log);
  let edge: RunningEdge;
  try {
    edge = await startEdgeDev({
      runnerUrl: runner.url,
      secret: config.secret,
      adminToken: token,
      port,
      stateDir,
    });
  } catch (e) {
    await runner.close();
    throw e;
  }
  return {
    runner,
    edgeUrl: edge.url,
    adminToken: token,
    close: async () => {
      await edge.close();
      await runner.close();
    },
  };
}

/**
 * The S3 protocol server the store tests use: moto's server on a loopback port, from a virtual
 * environment under `.epicache/tools/` installed with hash-pinned requirements
 * (test/s3-server/requirements.txt). Tests call {@link startS3Server}; without the server installed
 * they skip, unless EPICACHE_REQUIRE_S3=1 (CI), where that is an error.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { epicacheHome, REPO_ROOT } from "../paths";
import { freePort } from "./free-port";

export const S3_REQUIREMENTS = join(REPO_ROOT, "test", "s3-server", "requirements.txt");

export function s3ServerDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(epicacheHome(env), "tools", "s3-server");
}

function python(env: NodeJS.ProcessEnv = process.env): string {
  return join(s3ServerDir(env), "bin", "python");
}

export function s3ServerInstalled(env: NodeJS.ProcessEnv = process.env): boolean {
  return existsSync(join(s3ServerDir(env), "installed"));
}

/** Creates the virtual environment and installs the pinned server into it (idempotent). */
export function installS3Server(
  log: (m: string) => void = (m) => process.stderr.write(`${m}\n`),
): void {
  if (s3ServerInstalled()) return;
  const dir = s3ServerDir();
  const run = (cmd: string, args: string[]) => {
    const r = spawnSync(cmd, args, { stdio: ["ignore", "inherit", "inherit"] });
    if (r.status !== 0)
      throw new Error(
        `${cmd} ${args.join(" ")} failed (${r.error?.message ?? `exit ${r.status}`})`,
      );
  };
  log(`installing the S3 test server (moto) into ${dir}`);
  run("python3", ["-m", "venv", dir]);
  run(python(), [
    "-m",
    "pip",
    "install",
    "--quiet",
    "--disable-pip-version-check",
    "--no-deps",
    "--require-hashes",
    "-r",
    S3_REQUIREMENTS,
  ]);
  run(python(), ["-c", "import moto.server"]);
  spawnSync("touch", [join(dir, "installed")]);
}

export interface S3TestServer {
  endpoint: string;
  /** Client settings for the AWS SDK: this endpoint, path-style, dummy credentials. */
  client: {
    endpoint: string;
    region: string;
    forcePathStyle: boolean;
    credentials: { accessKeyId: string; secretAccessKey: string };
  };
  stop(): Promise<void>;
}

/**
 * Starts the server on a free loopback port and waits until it answers; undefined (skip) when it is
 * not installed, unless EPICACHE_REQUIRE_S3=1.
 */
export async function startS3Server(
  options: { port?: number } = {},
): Promise<S3TestServer | undefined> {
  if (!s3ServerInstalled()) {
    if (process.env.EPICACHE_REQUIRE_S3 === "1")
      throw new Error(
        "the S3 test server is required (EPICACHE_REQUIRE_S3=1) but not installed: run `npx tsx tools/s3-test-server.ts install`",
      );
    return undefined;
  }
  const port = options.port ?? (await freePort());
  const child: ChildProcess = spawn(
    python(),
    ["-m", "moto.server", "-H", "127.0.0.1", "-p", String(port)],
    {
      stdio: ["ignore", "ignore", "pipe"],
      env: { ...process.env, MOTO_ALLOW_NONEXISTENT_REGION: "true" },
    },
  );
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  const endpoint = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null)
      throw new Error(`the S3 test server exited (${child.exitCode}): ${stderr}`);
    try {
      const r = await fetch(`${endpoint}/moto-api/`, { signal: AbortSignal.timeout(1000) });
      if (r.status < 500) break;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`the S3 test server did not answer on ${endpoint} within 60 s: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    endpoint,
    client: {
      endpoint,
      region: "us-east-1",
      forcePathStyle: true,
      credentials: { accessKeyId: "test", secretAccessKey: "test" },
    },
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}

/** The `epicache` command as a child process, for tests of what a user types. */
import { spawn } from "node:child_process";
import { join } from "node:path";
import { REPO_ROOT } from "../paths";

export const CLI = join(REPO_ROOT, "gpu-runner", "bin", "epicache.mjs");

export interface CliRun {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `epicache ...args` from the repository root with `home` as EPICACHE_HOME and no model from the environment. */
export function runCli(home: string, args: readonly string[], timeoutMs = 60_000): Promise<CliRun> {
  const env: NodeJS.ProcessEnv = { ...process.env, EPICACHE_HOME: home };
  delete env.EPICACHE_CHAT_MODEL;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      cwd: REPO_ROOT,
      env,
      stdio: ["ignore", "pipe", "pipe"],
      timeout: timeoutMs,
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (s: string) => (stdout += s));
    child.stderr.setEncoding("utf8").on("data", (s: string) => (stderr += s));
    child.on("error", reject);
    child.on("close", (status) => resolve({ status, stdout, stderr }));
  });
}

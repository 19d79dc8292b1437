/**
 * The whole stack as `npm start` runs it, for the end-to-end tests: tools/stack/start.ts (through
 * tsx's loader) in a child process on free loopback ports, with its own store and edge state in a temporary folder, the
 * given admin token and a fresh runner secret. Resolves once it prints that both are ready.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REPO_ROOT } from "../gpu-runner/src/paths";
import { freePort } from "../gpu-runner/src/testing";

export interface StackProcess {
  /** The edge's URL (`http://127.0.0.1:<port>`). */
  edge: string;
  /** The last of what the stack printed (its stdout whole, then stderr, up to 20,000 characters). */
  output(): string;
  /** Stops the stack (SIGTERM, then SIGKILL after 15 s) and removes its folder. */
  stop(): Promise<void>;
}

/** Starts the stack (at most 300 s) with `adminToken`; `name` names its temporary folder. */
export async function startStackProcess(name: string, adminToken: string): Promise<StackProcess> {
  const dir = mkdtempSync(join(tmpdir(), `epicache-${name}-`));
  const [runnerPort, edgePort] = [await freePort(), await freePort()];
  const stack: ChildProcess = spawn(
    process.execPath,
    [
      "--import",
      "tsx",
      join(REPO_ROOT, "tools", "stack", "start.ts"),
      "--runner-port",
      String(runnerPort),
      "--edge-port",
      String(edgePort),
    ],
    {
      cwd: REPO_ROOT,
      env: {
        ...process.env,
        EPICACHE_ADMIN_TOKEN: adminToken,
        EPICACHE_STORE: join(dir, "store"),
        EPICACHE_EDGE_STATE: join(dir, "edge"),
        EPICACHE_RUNNER_SECRET: `${name}-${randomUUID()}`,
      },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let output = "";
  stack.stdout?.on("data", (d: Buffer) => (output += d.toString()));
  stack.stderr?.on("data", (d: Buffer) => (output = (output + d.toString()).slice(-20_000)));
  const stop = async () => {
    if (stack.exitCode === null && stack.signalCode === null) {
      const exited = new Promise((r) => stack.once("exit", r));
      stack.kill("SIGTERM");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000))]);
      if (stack.exitCode === null && stack.signalCode === null) stack.kill("SIGKILL");
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 300_000;
  while (!/ready; Ctrl-C stops both/.test(output)) {
    if (stack.exitCode !== null) {
      await stop();
      throw new Error(`npm start's stack exited (${stack.exitCode}):\n${output}`);
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`the stack did not come up in 300 s:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  const edge = /^edge\s+(\S+)/m.exec(output)?.[1] ?? "";
  if (edge !== `http://127.0.0.1:${edgePort}`) {
    await stop();
    throw new Error(
      `the stack printed edge ${JSON.stringify(edge)}, not port ${edgePort}:\n${output}`,
    );
  }
  if (!output.includes(`admin token  ${adminToken}`)) {
    await stop();
    throw new Error(`the stack did not print the admin token it was given:\n${output}`);
  }
  return { edge, output: () => output, stop };
}

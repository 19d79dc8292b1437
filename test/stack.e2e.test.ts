/**
 * The whole stack as `npm start` runs it (the runner and the edge under wrangler dev), on loopback
 * ports, with its own store and edge state: create a tenant, append a conversation, send a signed
 * rebuild webhook, wait for the new version, ask three questions, all over HTTP. The conversation is
 * a LoCoMo excerpt when ../shared/data is present, else a committed chat.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadLocomo, signWebhook } from "@epicache/shared";
import { benchFile } from "../shared/src/testing";
import { REPO_ROOT } from "../gpu-runner/src/paths";
import { freePort, NEEDS_PULL, pulledModel } from "../gpu-runner/src/testing";

const ready = pulledModel("chat") !== undefined && pulledModel("embedder") !== undefined;
const ADMIN = `adm_e2e_${randomUUID().replace(/-/g, "")}`;
/**
 * A LoCoMo excerpt (conv-26's first two sessions) when the benchmark data is beside the repository,
 * else the committed three-session chat (test/fixtures), so the test runs on a fresh clone too
 * (under EPICACHE_REQUIRE_DATA=1 the benchmark data must be there).
 */
async function conversationExcerpt(): Promise<{ source: string; messages: Array<Record<string, unknown>>; questions: string[] }> {
  const locomo = benchFile("locomo", "locomo-dev2.json");
  if (locomo !== undefined) {
    const { conversation } = loadLocomo(JSON.parse(await locomo.text()), { sampleId: "conv-26" });
    const messages = conversation.sessions.slice(0, 2).flatMap((s) =>
      s.turns.map((t) => ({ id: t.id, speaker: t.speaker, text: t.text, session: s.index, ...(s.date ? { timestamp: s.date } : {}) })),
    );
    return { source: "LoCoMo conv-26, sessions 1–2", messages, questions: ["What did Caroline research?", "When did Caroline go to the LGBTQ support group?", "What is Caroline's identity?"] };
  }
  const messages = readFileSync(join(REPO_ROOT, "test", "fixtures", "conversation-excerpt.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
  return { source: "test/fixtures/conversation-excerpt.jsonl", messages, questions: ["What class did Maya sign up for?", "Which race is Tom training for?", "Where will Maya move for her new job?"] };
}


describe.skipIf(!ready)(`npm start's stack end to end ${NEEDS_PULL}`, () => {
  const dir = mkdtempSync(join(tmpdir(), "epicache-e2e-"));
  let stack: ChildProcess | undefined;
  let edge = "";
  let output = "";

  beforeAll(async () => {
    const [runnerPort, edgePort] = [await freePort(), await freePort()];
    stack = spawn(process.execPath, [join(REPO_ROOT, "gpu-runner", "bin", "epicache.mjs"), "start", "--runner-port", String(runnerPort), "--edge-port", String(edgePort)], {
      cwd: REPO_ROOT,
      env: { ...process.env, EPICACHE_ADMIN_TOKEN: ADMIN, EPICACHE_STORE: join(dir, "store"), EPICACHE_EDGE_STATE: join(dir, "edge"), EPICACHE_RUNNER_SECRET: `e2e-${randomUUID()}` },
      stdio: ["ignore", "pipe", "pipe"],
    });
    stack.stdout?.on("data", (d: Buffer) => (output += d.toString()));
    stack.stderr?.on("data", (d: Buffer) => (output = (output + d.toString()).slice(-20_000)));
    const deadline = Date.now() + 300_000;
    while (!/ready; Ctrl-C stops both/.test(output)) {
      if (stack.exitCode !== null) throw new Error(`npm start's stack exited (${stack.exitCode}):\n${output}`);
      if (Date.now() > deadline) throw new Error(`the stack did not come up in 300 s:\n${output}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    edge = /^edge\s+(\S+)/m.exec(output)?.[1] ?? "";
    expect(edge).toBe(`http://127.0.0.1:${edgePort}`);
    expect(output).toContain(`admin token  ${ADMIN}`);
  }, 360_000);

  afterAll(async () => {
    if (stack !== undefined && stack.exitCode === null) {
      const exited = new Promise((r) => stack?.once("exit", r));
      stack.kill("SIGTERM");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000))]);
      if (stack.exitCode === null) stack.kill("SIGKILL");
    }
    rmSync(dir, { recursive: true, force: true });
  }, 30_000);

  it("creates a tenant, appends a conversation, rebuilds it by webhook and answers questions with their episodes", async () => {
    const { source, messages, questions } = await conversationExcerpt();
    console.log(`conversation: ${source}, ${messages.length} messages`);
    const json = async (res: Response) => ({ status: res.status, body: (await res.json()) as Record<string, unknown> });
    const tenant = await json(await fetch(`${edge}/v1/tenants`, { method: "POST", headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" }, body: JSON.stringify({ name: "e2e" }) }));
    expect(tenant.status).toBe(201);
    const { tenantId, apiKey, webhookSecret } = tenant.body as { tenantId: string; apiKey: string; webhookSecret: string };
    const auth = { authorization: `Bearer ${apiKey}`, "content-type": "application/json" };

    const appended = await json(await fetch(`${edge}/v1/conversations/maya-tom/messages`, { method: "POST", headers: auth, body: JSON.stringify({ messages }) }));
    expect(appended.body).toMatchObject({ appended: messages.length, messageCount: messages.length });

    const body = JSON.stringify({ conversationId: "maya-tom" });
    const signed = await signWebhook(webhookSecret, { id: `msg_${randomUUID()}`, timestamp: Math.floor(Date.now() / 1000), body });
    const hook = await json(await fetch(`${edge}/v1/webhooks/${tenantId}/rebuild`, { method: "POST", headers: { ...signed, "content-type": "application/json" }, body }));
    expect(hook.status).toBe(202);
    const version = hook.body.version as string;

    const deadline = Date.now() + 900_000;
    for (;;) {
      const state = await json(await fetch(`${edge}/v1/conversations/maya-tom`, { headers: auth }));
      if (state.body.activeVersion === version) break;
      const rebuild = state.body.rebuild as { status: string; error: unknown } | null;
      if (rebuild?.status === "failed") throw new Error(`the rebuild failed: ${JSON.stringify(rebuild.error)}\n${output}`);
      if (Date.now() > deadline) throw new Error(`version ${version} not active after 15 minutes: ${JSON.stringify(state.body)}`);
      await new Promise((r) => setTimeout(r, 1000));
    }

    for (const question of questions) {
      const answer = await json(await fetch(`${edge}/v1/conversations/maya-tom/query`, { method: "POST", headers: auth, body: JSON.stringify({ question, maxTokens: 16 }) }));
      expect(answer.status).toBe(200);
      expect(answer.body).toMatchObject({ version });
      expect(Number.isInteger(answer.body.episode)).toBe(true);
      expect(typeof answer.body.answer).toBe("string");
      expect((answer.body.answer as string).length).toBeGreaterThan(0);
      console.log(`${question} → episode ${answer.body.episode as number}: ${answer.body.answer as string}`);
    }
  }, 1_200_000);
});

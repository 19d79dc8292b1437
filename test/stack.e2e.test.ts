/**
 * The whole stack as `npm start` runs it (the runner and the edge under wrangler dev), on loopback
 * ports, with its own store and edge state, all over HTTP: create a tenant; append a conversation in
 * three batches, each followed by a signed rebuild webhook and a wait for its version (the first
 * built whole, the second and third as updates of the one before); append more during the third
 * rebuild with a burst of 5 webhooks, which make one more rebuild (an update) after it; ask three
 * questions, answered from the newest version. The conversation is a LoCoMo excerpt when
 * ../shared/data is present, else a committed chat.
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
 * A LoCoMo excerpt (conv-26's first three sessions) when the benchmark data is beside the
 * repository, else the committed three-session chat (test/fixtures), so the test runs on a fresh
 * clone too (under EPICACHE_REQUIRE_DATA=1 the benchmark data must be there).
 */
async function conversationExcerpt(): Promise<{ source: string; messages: Array<Record<string, unknown>>; questions: string[] }> {
  const locomo = benchFile("locomo", "locomo-dev2.json");
  if (locomo !== undefined) {
    const { conversation } = loadLocomo(JSON.parse(await locomo.text()), { sampleId: "conv-26" });
    const messages = conversation.sessions.slice(0, 3).flatMap((s) =>
      s.turns.map((t) => ({ id: t.id, speaker: t.speaker, text: t.text, session: s.index, ...(s.date ? { timestamp: s.date } : {}) })),
    );
    return { source: "LoCoMo conv-26, sessions 1–3", messages, questions: ["What did Caroline research?", "When did Caroline go to the LGBTQ support group?", "What is Caroline's identity?"] };
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

  it("builds a conversation appended in three batches (the second and third incrementally), folds a burst of webhooks during a rebuild into one more, and answers from the newest version", async () => {
    const { source, messages, questions } = await conversationExcerpt();
    // 60 % (LoCoMo: sessions 1–2), then 20 %, 10 % and 10 % (the last appended during the third
    // rebuild). The runner clusters again, in full, once the history has doubled since it last did,
    // or when new windows sit far from every episode (as session 4's first turns do from 1–3's).
    const cuts = [0.6, 0.8, 0.9].map((f) => Math.round(messages.length * f));
    const batches = [messages.slice(0, cuts[0]), messages.slice(cuts[0], cuts[1]), messages.slice(cuts[1], cuts[2]), messages.slice(cuts[2])];
    console.log(`conversation: ${source}, ${messages.length} messages in batches of ${batches.map((b) => b.length).join(", ")}`);
    const json = async (res: Response) => ({ status: res.status, body: (await res.json()) as Record<string, unknown> });
    const tenant = await json(await fetch(`${edge}/v1/tenants`, { method: "POST", headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" }, body: JSON.stringify({ name: "e2e" }) }));
    expect(tenant.status).toBe(201);
    const { tenantId, apiKey, webhookSecret } = tenant.body as { tenantId: string; apiKey: string; webhookSecret: string };
    const auth = { authorization: `Bearer ${apiKey}`, "content-type": "application/json" };
    type Rebuild = { version: string; status: string; kind: string | null; reason: string | null; baseVersion: string | null; error: unknown };
    type State = { activeVersion: string | null; active: { kind: string | null; baseVersion: string | null; messageCount: number | null } | null; rebuild: Rebuild | null; followUp: boolean };
    const state = async () => (await json(await fetch(`${edge}/v1/conversations/maya-tom`, { headers: auth }))).body as unknown as State;
    let appended = 0;
    const append = async (batch: Array<Record<string, unknown>>) => {
      const res = await json(await fetch(`${edge}/v1/conversations/maya-tom/messages`, { method: "POST", headers: auth, body: JSON.stringify({ messages: batch }) }));
      appended += batch.length;
      expect(res.body).toMatchObject({ appended: batch.length, messageCount: appended });
    };
    const webhook = async () => {
      const body = JSON.stringify({ conversationId: "maya-tom" });
      const signed = await signWebhook(webhookSecret, { id: `msg_${randomUUID()}`, timestamp: Math.floor(Date.now() / 1000), body });
      return json(await fetch(`${edge}/v1/webhooks/${tenantId}/rebuild`, { method: "POST", headers: { ...signed, "content-type": "application/json" }, body }));
    };
    /** Polls the conversation until `until` holds of it (a failed newest rebuild ends the test). */
    const waitFor = async (what: string, until: (s: State) => boolean): Promise<State> => {
      const deadline = Date.now() + 900_000;
      for (;;) {
        const s = await state();
        if (until(s)) return s;
        if (s.rebuild?.status === "failed") throw new Error(`the rebuild ${s.rebuild.version} failed: ${JSON.stringify(s.rebuild.error)}\n${output}`);
        if (Date.now() > deadline) throw new Error(`${what}: not after 15 minutes: ${JSON.stringify(s)}`);
        await new Promise((r) => setTimeout(r, 1000));
      }
    };
    /** Appends a batch, sends a webhook, and waits for the version it queued to be active. */
    const rebuild = async (batch: Array<Record<string, unknown>>) => {
      await append(batch);
      const hook = await webhook();
      expect(hook.status).toBe(202);
      expect(hook.body).toMatchObject({ status: "queued", followUp: false });
      const version = hook.body.version as string;
      const started = Date.now();
      const s = await waitFor(`version ${version} active`, (x) => x.activeVersion === version);
      console.log(`${version}: ${s.active?.kind} of ${s.active?.messageCount} messages (base ${s.active?.baseVersion}) in ${((Date.now() - started) / 1000).toFixed(0)} s`);
      return { version, state: s };
    };

    const first = await rebuild(batches[0]);
    expect(first.state.active).toMatchObject({ kind: "full", baseVersion: null, messageCount: batches[0].length });
    const second = await rebuild(batches[1]);
    expect(second.state.active).toMatchObject({ kind: "incremental", baseVersion: first.version, messageCount: appended });
    expect(second.state.rebuild).toMatchObject({ version: second.version, status: "succeeded", kind: "incremental" });

    // The third batch; once its rebuild has read the transcript (submitted), the rest of the
    // conversation and a burst of 5 webhooks, while it runs.
    await append(batches[2]);
    const third = await webhook();
    expect(third.status).toBe(202);
    const thirdVersion = third.body.version as string;
    const sent = await waitFor(`version ${thirdVersion} sent`, (x) => x.rebuild?.version === thirdVersion && x.rebuild.status !== "queued");
    expect(sent.rebuild, `${JSON.stringify(sent.rebuild)}\n${output.slice(-3000)}`).toMatchObject({ kind: "incremental", baseVersion: second.version });
    await append(batches[3]);
    const burst = await Promise.all(Array.from({ length: 5 }, () => webhook()));
    console.log(`burst during ${thirdVersion} (${sent.rebuild?.status}): ${burst.map((b) => `${b.status} ${String(b.body.version)} followUp ${String(b.body.followUp)}`).join("; ")}`);
    expect(burst.every((b) => b.status === 202)).toBe(true);
    // The third rebuild settles; the follow-up starts in the same transaction, and runs for a while.
    const thirdState = await waitFor(`version ${thirdVersion} active`, (x) => x.activeVersion !== null && x.activeVersion >= thirdVersion);
    expect(thirdState.activeVersion).toBe(thirdVersion);
    expect(thirdState.active).toMatchObject({ kind: "incremental", baseVersion: second.version, messageCount: cuts[2] });
    const followUp = (await waitFor("the follow-up", (x) => x.rebuild !== null && x.rebuild.version !== thirdVersion)).rebuild?.version as string;
    // Every webhook of the burst waited for the third rebuild, or (had it settled meanwhile) for the one more.
    for (const b of burst) expect([thirdVersion, followUp]).toContain(b.body.version);
    const last = await waitFor(`version ${followUp} active`, (x) => x.activeVersion === followUp);
    expect(last.active).toMatchObject({ kind: "incremental", baseVersion: thirdVersion, messageCount: messages.length });
    // At most one more rebuild: the newest is that one, and none waits after it.
    expect(last.rebuild).toMatchObject({ version: followUp, status: "succeeded", kind: "incremental" });
    expect(last.followUp).toBe(false);

    for (const question of questions) {
      const answer = await json(await fetch(`${edge}/v1/conversations/maya-tom/query`, { method: "POST", headers: auth, body: JSON.stringify({ question, maxTokens: 16 }) }));
      expect(answer.status).toBe(200);
      expect(answer.body).toMatchObject({ version: followUp });
      expect(Number.isInteger(answer.body.episode)).toBe(true);
      expect(typeof answer.body.answer).toBe("string");
      expect((answer.body.answer as string).length).toBeGreaterThan(0);
      console.log(`${question} → episode ${answer.body.episode as number}: ${answer.body.answer as string}`);
    }
  }, 3_600_000);
});

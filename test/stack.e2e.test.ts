/**
 * The whole stack as `npm start` runs it (the runner and the edge under wrangler dev), on loopback
 * ports, with its own store and edge state, all over HTTP through @epicache/client: create a
 * tenant; append a conversation in three batches, each followed by a signed rebuild webhook and a
 * wait for its version (the first built whole, the second and third as updates of the one before);
 * append more during the third rebuild with a burst of 5 webhooks, which make one more rebuild (an
 * update) after it; ask three questions, answered from the newest version, and one more streamed.
 * The conversation is a LoCoMo excerpt when ../shared/data is present, else a committed chat.
 */
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  EpicacheClient,
  type AnswerEvent,
  type Conversation,
  type Message,
} from "@epicache/client";
import { loadLocomo } from "@epicache/shared";
import { benchFile } from "../shared/src/testing";
import { REPO_ROOT } from "../gpu-runner/src/paths";
import { NEEDS_PULL, pulledModel } from "../gpu-runner/src/testing";
import { startStackProcess, type StackProcess } from "./stack-process";

const ready = pulledModel("chat") !== undefined && pulledModel("embedder") !== undefined;
const ADMIN = `adm_e2e_${randomUUID().replace(/-/g, "")}`;
/**
 * A LoCoMo excerpt (conv-26's first three sessions) when the benchmark data is beside the
 * repository, else the committed three-session chat (test/fixtures), so the test runs on a fresh
 * clone too (under EPICACHE_REQUIRE_DATA=1 the benchmark data must be there).
 */
async function conversationExcerpt(): Promise<{
  source: string;
  messages: Message[];
  questions: string[];
}> {
  const locomo = benchFile("locomo", "locomo-dev2.json");
  if (locomo !== undefined) {
    const { conversation } = loadLocomo(JSON.parse(await locomo.text()), { sampleId: "conv-26" });
    const messages = conversation.sessions.slice(0, 3).flatMap((s) =>
      s.turns.map((t) => ({
        id: t.id,
        speaker: t.speaker,
        text: t.text,
        session: s.index,
        ...(s.date ? { timestamp: s.date } : {}),
      })),
    );
    return {
      source: "LoCoMo conv-26, sessions 1–3",
      messages,
      questions: [
        "What did Caroline research?",
        "When did Caroline go to the LGBTQ support group?",
        "What is Caroline's identity?",
      ],
    };
  }
  const messages = readFileSync(
    join(REPO_ROOT, "test", "fixtures", "conversation-excerpt.jsonl"),
    "utf8",
  )
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as Message);
  return {
    source: "test/fixtures/conversation-excerpt.jsonl",
    messages,
    questions: [
      "What class did Maya sign up for?",
      "Which race is Tom training for?",
      "Where will Maya move for her new job?",
    ],
  };
}

describe.skipIf(!ready)(`npm start's stack end to end ${NEEDS_PULL}`, () => {
  let stack: StackProcess | undefined;
  let edge = "";
  const output = () => stack?.output() ?? "";

  beforeAll(async () => {
    stack = await startStackProcess("e2e", ADMIN);
    edge = stack.edge;
  }, 360_000);

  afterAll(async () => {
    await stack?.stop();
  }, 30_000);

  it("builds a conversation appended in three batches (the second and third incrementally), folds a burst of webhooks during a rebuild into one more, and answers from the newest version", async () => {
    const { source, messages, questions } = await conversationExcerpt();
    // 60 % (LoCoMo: sessions 1–2), then 20 %, 10 % and 10 % (the last appended during the third
    // rebuild). The runner clusters again, in full, once the history has doubled since it last did,
    // or when new windows sit far from every episode (as session 4's first turns do from 1–3's).
    const cuts = [0.6, 0.8, 0.9].map((f) => Math.round(messages.length * f));
    const batches = [
      messages.slice(0, cuts[0]),
      messages.slice(cuts[0], cuts[1]),
      messages.slice(cuts[1], cuts[2]),
      messages.slice(cuts[2]),
    ];
    console.log(
      `conversation: ${source}, ${messages.length} messages in batches of ${batches.map((b) => b.length).join(", ")}`,
    );
    const tenant = await new EpicacheClient({ baseUrl: edge, adminToken: ADMIN }).createTenant(
      "e2e",
    );
    const { tenantId, apiKey, webhookSecret } = tenant;
    expect(tenant).toMatchObject({
      tenantId: expect.stringMatching(/^t-/),
      apiKey: expect.stringMatching(/^ek_/),
      webhookSecret: expect.stringMatching(/^whsec_/),
    });
    const client = new EpicacheClient({ baseUrl: edge, apiKey });
    let appended = 0;
    const append = async (batch: Message[]) => {
      const res = await client.appendMessages("maya-tom", batch);
      appended += batch.length;
      expect(res).toMatchObject({ appended: batch.length, messageCount: appended });
    };
    const webhook = () => client.triggerRebuild(tenantId, webhookSecret, "maya-tom");
    /** The stack's output with a failed wait (a rebuild failed, or it timed out). */
    const withOutput = async <T>(wait: Promise<T>): Promise<T> => {
      try {
        return await wait;
      } catch (e) {
        throw new Error(`${(e as Error).message}\n${output()}`, { cause: e });
      }
    };
    /** Waits for `version` to be active (a failed rebuild ends the test). */
    const activeOf = (version: string) =>
      withOutput(client.waitForRebuild("maya-tom", { version, timeoutMs: 900_000 }));
    /** Polls the conversation until `until` holds of it (a failed newest rebuild ends the test). */
    const waitFor = async (
      what: string,
      until: (s: Conversation) => boolean,
    ): Promise<Conversation> => {
      const deadline = Date.now() + 900_000;
      for (;;) {
        const s = await client.getConversation("maya-tom");
        if (until(s)) return s;
        if (s.rebuild?.status === "failed")
          throw new Error(
            `the rebuild ${s.rebuild.version} failed: ${JSON.stringify(s.rebuild.error)}\n${output()}`,
          );
        if (Date.now() > deadline)
          throw new Error(`${what}: not after 15 minutes: ${JSON.stringify(s)}`);
        await new Promise((r) => setTimeout(r, 1000));
      }
    };
    /** Appends a batch, sends a webhook, and waits for the version it queued to be active. */
    const rebuild = async (batch: Message[]) => {
      await append(batch);
      const hook = await webhook();
      expect(hook.httpStatus).toBe(202);
      expect(hook).toMatchObject({ status: "queued", followUp: false });
      const version = hook.version;
      const started = Date.now();
      const s = await activeOf(version);
      expect(s.activeVersion).toBe(version);
      console.log(
        `${version}: ${s.active?.kind} of ${s.active?.messageCount} messages (base ${s.active?.baseVersion}) in ${((Date.now() - started) / 1000).toFixed(0)} s`,
      );
      return { version, state: s };
    };

    const first = await rebuild(batches[0]);
    expect(first.state.active).toMatchObject({
      kind: "full",
      baseVersion: null,
      messageCount: batches[0].length,
    });
    const second = await rebuild(batches[1]);
    expect(second.state.active).toMatchObject({
      kind: "incremental",
      baseVersion: first.version,
      messageCount: appended,
    });
    expect(second.state.rebuild).toMatchObject({
      version: second.version,
      status: "succeeded",
      kind: "incremental",
    });

    // The third batch; once its rebuild has read the transcript (submitted), the rest of the
    // conversation and a burst of 5 webhooks, while it runs.
    await append(batches[2]);
    const third = await webhook();
    expect(third.httpStatus).toBe(202);
    const thirdVersion = third.version;
    const sent = await waitFor(
      `version ${thirdVersion} sent`,
      (x) => x.rebuild?.version === thirdVersion && x.rebuild.status !== "queued",
    );
    expect(sent.rebuild, `${JSON.stringify(sent.rebuild)}\n${output().slice(-3000)}`).toMatchObject(
      { kind: "incremental", baseVersion: second.version },
    );
    await append(batches[3]);
    const burst = await Promise.all(Array.from({ length: 5 }, () => webhook()));
    console.log(
      `burst during ${thirdVersion} (${sent.rebuild?.status}): ${burst.map((b) => `${b.httpStatus} ${b.version} followUp ${b.followUp}`).join("; ")}`,
    );
    expect(burst.every((b) => b.httpStatus === 202)).toBe(true);
    // The third rebuild settles; the follow-up starts in the same transaction, and runs for a while.
    // (waitForRebuild with a version also takes a later one as done: the assertion says which it was.)
    const thirdState = await activeOf(thirdVersion);
    expect(thirdState.activeVersion).toBe(thirdVersion);
    expect(thirdState.active).toMatchObject({
      kind: "incremental",
      baseVersion: second.version,
      messageCount: cuts[2],
    });
    // Without a version, waitForRebuild waits until no rebuild is queued or running and none waits to follow.
    const last = await withOutput(client.waitForRebuild("maya-tom", { timeoutMs: 900_000 }));
    const followUp = last.rebuild?.version as string;
    expect(followUp).not.toBe(thirdVersion);
    // Every webhook of the burst waited for the third rebuild, or (had it settled meanwhile) for the one more.
    for (const b of burst) expect([thirdVersion, followUp]).toContain(b.version);
    expect(last.activeVersion).toBe(followUp);
    expect(last.active).toMatchObject({
      kind: "incremental",
      baseVersion: thirdVersion,
      messageCount: messages.length,
    });
    // At most one more rebuild: the newest is that one, and none waits after it.
    expect(last.rebuild).toMatchObject({
      version: followUp,
      status: "succeeded",
      kind: "incremental",
    });
    expect(last.followUp).toBe(false);

    for (const question of questions) {
      const answer = await client.ask("maya-tom", { question, maxTokens: 16 });
      expect(answer).toMatchObject({ version: followUp });
      expect(Number.isInteger(answer.episode)).toBe(true);
      expect(typeof answer.answer).toBe("string");
      expect(answer.answer.length).toBeGreaterThan(0);
      console.log(`${question} → episode ${answer.episode}: ${answer.answer}`);
    }

    // The first question again, streamed: meta, the tokens as they come, then done with the whole answer.
    const streamed: AnswerEvent[] = [];
    for await (const event of client.askStream("maya-tom", {
      question: questions[0],
      maxTokens: 16,
    }))
      streamed.push(event);
    const [meta, done] = [streamed[0], streamed[streamed.length - 1]];
    expect(meta).toMatchObject({ event: "meta", data: { version: followUp } });
    expect(done).toMatchObject({ event: "done", data: { version: followUp } });
    expect(
      meta.event === "meta" && done.event === "done" && done.data.episode === meta.data.episode,
    ).toBe(true);
    expect(streamed.slice(1, -1).every((e) => e.event === "token")).toBe(true);
    expect(done.event === "done" && done.data.answer.length > 0).toBe(true);
    console.log(
      `${questions[0]} (streamed, ${streamed.length - 2} token events) → ${done.event === "done" ? done.data.answer : ""}`,
    );
  }, 3_600_000);
});

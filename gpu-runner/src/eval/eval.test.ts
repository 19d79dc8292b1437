import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { formatTurnLine, loadLocomo, renderContext, tokenF1 } from "@epicache/shared";
import { openEmbedder, type OnnxEmbedder } from "../embedder";
import { generate, KvCache, openChatModel, type ChatModel } from "../runtime";
import type { LogProbs } from "../runtime/log-probs";
import { chatFrame } from "../press";
import { NEEDS_PULL, pulledModel, tinyGguf } from "../testing";
import { turnSpans } from "./evidence";
import { teacherForced, withPrompt } from "./fidelity";
import { evidenceTurns, selectQuestions } from "./questions";
import { runEval, type EvalConfig } from "./run-eval";
import type { ResultRow } from "./report";

// A hand-made LoCoMo sample: three sessions, questions with evidence in and out of the first two.
const session = (n: number, lines: string[]) =>
  lines.map((text, i) => ({ speaker: i % 2 ? "Bo" : "Al", dia_id: `D${n}:${i + 1}`, text }));
const sample = {
  sample_id: "hand-1",
  conversation: {
    speaker_a: "Al",
    speaker_b: "Bo",
    session_1_date_time: "1 May, 2023",
    session_1: session(1, [
      "I bought a red bike.",
      "Nice! Where?",
      "At the market on Main street.",
      "Cool.",
    ]),
    session_2_date_time: "8 May, 2023",
    session_2: session(2, [
      "My sister visited from Oslo.",
      "How long did she stay?",
      "Three days.",
      "Lovely.",
    ]),
    session_3_date_time: "9 June, 2023",
    session_3: session(3, [
      "I started learning the violin.",
      "Since when?",
      "Since last Monday.",
      "Great.",
    ]),
  },
  qa: [
    { question: "What colour is Al's bike?", answer: "red", evidence: ["D1:1"], category: 4 },
    {
      question: "Where is Al's sister from?",
      answer: "Oslo",
      evidence: ["D2:1", "D2:3."],
      category: 1,
    },
    {
      question: "When did Al's sister visit?",
      answer: "8 May 2023",
      evidence: ["D2:1"],
      category: 2,
    },
    {
      question: "What instrument does Al learn?",
      answer: "violin",
      evidence: ["D3:1"],
      category: 4,
    },
    {
      question: "Did Bo buy a bike?",
      answer: "No",
      adversarial_answer: "yes",
      evidence: ["D1:1"],
      category: 5,
    },
    {
      question: "Where and what?",
      answer: "market, bike",
      evidence: ["D1:1-D1:3", "D3:1"],
      category: 1,
    },
  ],
};

describe("question selection", () => {
  const { conversation, qa } = loadLocomo([sample]);
  const firstTwo = { ...conversation, sessions: conversation.sessions.slice(0, 2) };

  it("asks exactly the questions whose evidence lies in the kept sessions, and never adversarial ones", () => {
    const { questions, skipped } = selectQuestions(qa, firstTwo, "locomo");
    expect(questions.map((q) => q.question)).toEqual([
      "What colour is Al's bike?",
      "Where is Al's sister from?",
      "When did Al's sister visit?",
    ]);
    expect(questions.map((q) => q.category)).toEqual(["single-hop", "multi-hop", "temporal"]);
    expect(skipped).toEqual({ adversarial: 1, outside: 2, noEvidence: 0 });
    expect(selectQuestions(qa, conversation, "locomo").questions).toHaveLength(5);
  });

  it("reads evidence ids as turn ids (trailing dots, ranges within a session)", () => {
    expect(evidenceTurns("D5:3.")).toEqual(["D5:3"]);
    expect(evidenceTurns("D12:3-D12:5")).toEqual(["D12:3", "D12:4", "D12:5"]);
    expect(evidenceTurns(" D1:2 ")).toEqual(["D1:2"]);
  });

  it("F1 of identical strings is 1 and of disjoint strings 0", () => {
    expect(tokenF1("The red bike", "red bike")).toBe(1);
    expect(tokenF1("violin", "piano")).toBe(0);
  });
});

const embedderPath = pulledModel("embedder");
describe.skipIf(!embedderPath)(`evaluation on a tiny model ${NEEDS_PULL}`, () => {
  const dir = mkdtempSync(join(tmpdir(), "epicache-eval-"));
  let model: ChatModel;
  let embedder: OnnxEmbedder;
  beforeAll(async () => {
    const path = join(dir, "tiny.gguf");
    writeFileSync(path, tinyGguf({ architecture: "llama", numLayers: 2, seed: 9 }).bytes);
    model = await openChatModel(path, { graphRoot: join(dir, "graphs"), numerics: "exact" });
    embedder = await openEmbedder(embedderPath);
  });
  afterAll(async () => {
    await model?.decoder.release();
    await embedder?.release();
    rmSync(dir, { recursive: true, force: true });
  });

  it("Full KV has KL 0; a budget over the context gives KL 0 and Full KV's F1; a rerun skips finished jobs", async () => {
    const data = join(dir, "hand.json");
    writeFileSync(data, JSON.stringify([sample]));
    const out = join(dir, "out");
    const config: EvalConfig = {
      data,
      format: "locomo",
      conversations: null,
      methods: ["full", "snapkv", "epicache"],
      budgets: [4096],
      history: "cut",
      positions: "compact",
      maxContext: 4000,
      episodes: 2,
      routing: { rule: "lexical" },
      nMedoid: 2,
      block: 64,
      maxAnswerTokens: 4,
      seed: 1,
      numerics: "exact",
    };
    const rows = await runEval(model, embedder, config, out);
    const all = (method: string) =>
      rows.find((r) => r.method === method && r.category === "all") as ResultRow;
    expect(all("full").kl).toBe(0);
    expect(all("full").budget).toBeNull();
    expect(all("full").questions).toBe(5);
    for (const method of ["snapkv", "epicache"]) {
      expect(all(method).kl, method).toBeLessThan(1e-6);
      expect(all(method).f1, method).toBe(all("full").f1);
      expect(all(method).compression, method).toBeCloseTo(1, 6);
    }
    expect(all("epicache").routingHit).not.toBeNull();
    expect(all("snapkv").routingHit).toBeNull();
    // Each job's own time: its build is part of it, and the process worked for it.
    for (const method of ["full", "snapkv", "epicache"]) {
      expect(all(method).jobSeconds, method).toBeGreaterThanOrEqual(all(method).buildSeconds);
      expect(all(method).jobCpuSeconds, method).toBeGreaterThan(0);
    }
    // Nothing evicted: KL along the full cache's own answer is 0 too, every evidence entry is kept, and
    // the paired difference against EpiCache is 0 with no spread.
    for (const method of ["full", "snapkv", "epicache"]) {
      expect(all(method).klGreedy, method).toBeLessThan(1e-6);
      expect(all(method).evidenceKept, method).toBe(1);
    }
    expect(all("snapkv").f1Ci).toEqual([0, 0]);
    expect(all("snapkv").klCi?.[1]).toBeLessThan(1e-6);
    expect(all("epicache").f1Ci).toBeNull();
    expect(all("full").f1Ci).toBeNull();
    const lines = readFileSync(join(out, "results.jsonl"), "utf8").trim().split("\n");
    // One line per job and category (single-hop, multi-hop, temporal, all) for three jobs.
    expect(lines).toHaveLength(rows.length);
    const again = await runEval(model, embedder, config, out);
    expect(again).toHaveLength(rows.length);
    // A job stopped while answering (its questions' lines written, its results not): the rerun answers
    // it again, and questions.jsonl holds each of its questions once.
    const resultsPath = join(out, "results.jsonl");
    writeFileSync(
      resultsPath,
      lines
        .filter((l) => (JSON.parse(l) as ResultRow).method !== "snapkv")
        .map((l) => `${l}\n`)
        .join(""),
    );
    const questionLines = () =>
      readFileSync(join(out, "questions.jsonl"), "utf8").trim().split("\n").sort();
    const answered = questionLines();
    const resumed = await runEval(model, embedder, config, out);
    expect(
      resumed.filter((r) => r.method === "snapkv").map((r) => [r.category, r.f1, r.kl]),
    ).toEqual(rows.filter((r) => r.method === "snapkv").map((r) => [r.category, r.f1, r.kl]));
    expect(questionLines()).toEqual(answered);
    await expect(
      runEval(model, embedder, { ...config, budgets: [8192] }, out),
    ).rejects.toMatchObject({ code: "invalid_argument" });

    // The model is recorded by id and fingerprint. A config written before that (the builder's path
    // as the model) resumes on the same weights; other weights are refused rather than mixed in.
    const configPath = join(out, "config.json");
    const recorded = JSON.parse(readFileSync(configPath, "utf8")) as Record<string, unknown>;
    expect(recorded).toMatchObject({ model: "tiny.gguf", fingerprint: model.fingerprint });
    writeFileSync(
      configPath,
      `${JSON.stringify({ ...recorded, model: "/another/machine/tiny.gguf" }, null, 1)}\n`,
    );
    expect(await runEval(model, embedder, config, out)).toHaveLength(rows.length);
    expect(JSON.parse(readFileSync(configPath, "utf8"))).toEqual(recorded);
    writeFileSync(
      configPath,
      `${JSON.stringify({ ...recorded, fingerprint: "0123456789abcdef" }, null, 1)}\n`,
    );
    await expect(runEval(model, embedder, config, out)).rejects.toMatchObject({
      code: "model_mismatch",
      message: expect.stringContaining("0123456789abcdef"),
    });

    // A config written before routing rules routed by centroid: it resumes with centroid routing only.
    const { routing: _, ...unrouted } = recorded;
    writeFileSync(configPath, `${JSON.stringify(unrouted, null, 1)}\n`);
    await expect(runEval(model, embedder, config, out)).rejects.toMatchObject({
      code: "invalid_argument",
      message: expect.stringContaining("pass --routing centroid"),
    });
    expect(
      await runEval(model, embedder, { ...config, routing: { rule: "centroid" } }, out),
    ).toHaveLength(rows.length);
    // Results of one rule do not resume under another: the error names the options that do.
    writeFileSync(configPath, `${JSON.stringify(recorded, null, 1)}\n`);
    await expect(
      runEval(model, embedder, { ...config, routing: { rule: "vote", k: 3 } }, out),
    ).rejects.toMatchObject({
      code: "invalid_argument",
      message: expect.stringContaining(
        "made with --routing lexical: pass --routing lexical to add",
      ),
    });
    // Nor under another default window count; a config that predates it stands for 8 windows.
    await expect(runEval(model, embedder, { ...config, nMedoid: 1 }, out)).rejects.toMatchObject({
      code: "invalid_argument",
      message: expect.stringContaining("pass --n-medoid 2 to add"),
    });
    const { nMedoid: __, ...uncounted } = recorded;
    writeFileSync(configPath, `${JSON.stringify(uncounted, null, 1)}\n`);
    await expect(runEval(model, embedder, config, out)).rejects.toMatchObject({
      code: "invalid_argument",
      message: expect.stringContaining("pass --n-medoid 8 to add"),
    });
    expect(await runEval(model, embedder, { ...config, nMedoid: 8 }, out)).toHaveLength(
      rows.length,
    );

    // Each EpiCache question's line: the routed episode's hit, and every rule's side by side.
    const questions = readFileSync(join(out, "questions.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map(
        (l) =>
          JSON.parse(l) as { method: string; hit: number | null; hits?: Record<string, number> },
      );
    for (const q of questions.filter((l) => l.method === "epicache")) {
      expect(Object.keys(q.hits ?? {})).toEqual([
        "centroid",
        "window",
        "vote-3",
        "vote-5",
        "vote-8",
        "lexical",
      ]);
      expect(q.hit).toBe(q.hits?.lexical);
    }
    expect(
      questions
        .filter((l) => l.method !== "epicache")
        .every((l) => l.hits === undefined && l.hit === null),
    ).toBe(true);
  });

  it("grows caches one session at a time as the service would: updates and full builds counted, nothing lost when nothing is evicted", async () => {
    const data = join(dir, "grow.json");
    writeFileSync(data, JSON.stringify([sample]));
    const out = join(dir, "out-grow");
    const config: EvalConfig = {
      data,
      format: "locomo",
      conversations: null,
      methods: ["full", "epicache:updates=session"],
      budgets: [4096],
      history: "cut",
      positions: "compact",
      maxContext: 4000,
      episodes: 2,
      routing: { rule: "lexical" },
      nMedoid: 2,
      block: 64,
      maxAnswerTokens: 4,
      seed: 1,
      numerics: "exact",
    };
    // Stopped once the first session is published (the next session's prefill throws): a rerun goes on from there.
    const partial = join(out, "caches", "hand-1.epicache_updates_session-4096.build.json.partial");
    const stop = (p: { step?: { unit: string } }) => {
      if (p.step?.unit === "blocks" && existsSync(partial)) throw new Error("stopped");
    };
    await expect(runEval(model, embedder, config, out, { onProgress: stop })).rejects.toThrow(
      "stopped",
    );
    expect(JSON.parse(readFileSync(partial, "utf8"))).toMatchObject({
      sessions: 1,
      builds: { full: 1, incremental: 0 },
    });
    const logs: string[] = [];
    const rows = await runEval(model, embedder, config, out, { log: (m) => logs.push(m) });
    expect(logs.some((l) => l.startsWith("going on from session 2 of 3"))).toBe(true);
    const all = (method: string) =>
      rows.find((r) => r.method === method && r.category === "all") as ResultRow;
    const grown = all("epicache:updates=session");
    // A budget over the history: the updated caches hold every token, as the full cache does.
    expect(grown.questions).toBe(5);
    expect(grown.kl).toBeLessThan(1e-6);
    expect(grown.f1).toBe(all("full").f1);
    expect(grown.routingHit).not.toBeNull();
    // Three sessions: one first build, then two webhooks, each an update or (2× growth) a full build.
    const record = JSON.parse(
      readFileSync(join(out, "caches", "hand-1.epicache_updates_session-4096.build.json"), "utf8"),
    ) as { builds: { full: number; incremental: number } };
    expect(record.builds.full + record.builds.incremental).toBe(3);
    expect(record.builds.incremental).toBeGreaterThan(0);
    // Superseded versions are collected: the job's tenant keeps only the last.
    const versions = readdirSync(
      join(
        out,
        "caches",
        "tenants",
        "grow-epicache_updates_session-4096",
        "conversations",
        "hand-1",
        "versions",
      ),
    );
    expect(versions).toEqual(["epicache_updates_session-4096"]);
  });

  it("reads whole histories: every question asked, recent answers from the last turns, old and recent evidence apart, positions recorded", async () => {
    const data = join(dir, "whole.json");
    writeFileSync(data, JSON.stringify([sample]));
    const out = join(dir, "out-whole");
    // A recent window of exactly the last session: its turns are recent, the first two sessions old.
    const { conversation } = loadLocomo([sample]);
    const lastSession = renderContext({
      ...conversation,
      sessions: conversation.sessions.slice(2),
    });
    const maxContext =
      chatFrame(model.tokenizer).open.length + model.tokenizer.encode(lastSession).length;
    const config: EvalConfig = {
      data,
      format: "locomo",
      conversations: null,
      methods: ["recent", "snapkv", "epicache-original"],
      budgets: [16],
      history: "whole",
      positions: "compact",
      maxContext,
      episodes: 2,
      routing: { rule: "window" },
      nMedoid: 2,
      block: 32,
      maxAnswerTokens: 4,
      seed: 1,
      numerics: "exact",
    };
    const rows = await runEval(model, embedder, config, out);
    const row = (method: string, category: string) =>
      rows.find((r) => r.method === method && r.category === category) as ResultRow;
    for (const method of config.methods) {
      expect(row(method, "all").questions, method).toBe(5);
      // The bike and the sister's two questions: old; the violin and "Where and what?" (D3:1 among its evidence): recent.
      expect(row(method, "evidence-old").questions, method).toBe(3);
      expect(row(method, "evidence-recent").questions, method).toBe(2);
      expect(row(method, "all").window, method).toBe(model.config.contextLength);
      expect(row(method, "all").maxPosition, method).toBeGreaterThan(0);
      expect(row(method, "all").history, method).toBe("whole");
    }
    expect(row("recent", "all").budget).toBeNull();
    // recent keeps the last turns only: far fewer entries than the others' history.
    expect(row("recent", "all").entries).toBeLessThanOrEqual(
      maxContext * model.config.numLayers * model.config.numKvHeads,
    );
    const lines = readFileSync(join(out, "questions.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { method: string; age: string });
    expect(lines).toHaveLength(5 * config.methods.length);
    expect(lines.filter((l) => l.method === "recent" && l.age === "evidence-old")).toHaveLength(3);
    // recent holds none of the old evidence and all of the recent evidence of a question wholly in its window.
    expect(row("recent", "evidence-old").evidenceKept).toBe(0);
    expect(row("recent", "evidence-recent").evidenceKept).toBeGreaterThan(0);
    // A budget of 16 per head keeps little of a history of hundreds of tokens.
    expect(row("snapkv", "all").evidenceKept).toBeLessThan(0.5);
  });

  it("computes a question's prompt once: continuations on the cache holding it give what the whole prompt and answer give, and leave the cache as it was", async () => {
    const cache = new KvCache(model.config);
    const history = Array.from({ length: 40 }, (_, i) => 3 + ((i * 7) % 50));
    await model.decoder.prefill(
      history,
      history.map((_, i) => i),
      cache,
      [history.length - 1],
    );
    const prompt = [11, 12, 13, 14, 15];
    const answer = [21, 22, 23];
    cache.fit(prompt.length + 4);
    const whole = await teacherForced(model.decoder, cache, prompt, answer);
    const before = {
      keys: cache.layers[1].keys.slice(),
      capacity: cache.layers[1].capacity,
      lengths: cache.layerEntries,
    };
    const capacity = cache.layers[0].capacity;
    const { after, again, generated } = await withPrompt(
      model.decoder,
      cache,
      prompt,
      async (last) => {
        expect(last).toBe(prompt[4]);
        expect(cache.nextPosition).toBe(history.length + prompt.length - 1);
        const after = await teacherForced(model.decoder, cache, [last], answer);
        const again = await teacherForced(model.decoder, cache, [last], answer);
        const generated: number[] = [];
        for await (const t of generate(model, [last], { maxTokens: 3, cache, refit: false }))
          generated.push(t.id);
        return { after, again, generated };
      },
    );
    expect(generated.length).toBeGreaterThan(0);
    expect(after).toHaveLength(answer.length);
    const logP = (p: LogProbs) => Array.from(p.logits, (z) => z - p.lse);
    for (let r = 0; r < answer.length; r++) {
      const a = logP(after[r]);
      const largest = logP(whole[r]).reduce((m, v, i) => Math.max(m, Math.abs(v - a[i])), 0);
      expect(largest, `row ${r}`).toBeLessThan(1e-4);
      expect(logP(again[r])).toEqual(a); // teacher forcing does not change the cache
    }
    // The prompt and the generated tokens are gone, the history's entries untouched, nothing resized.
    expect(cache.nextPosition).toBe(history.length);
    expect(cache.tokensRead).toBe(history.length);
    expect(cache.layerEntries).toEqual(before.lengths);
    expect(cache.layers[0].capacity).toBe(capacity);
    const D = cache.headDim;
    const kept = cache.layers[1];
    for (let h = 0; h < cache.kvHeads; h++) {
      const n = kept.lengths[h] * D;
      const at = (cap: number) => h * cap * D;
      expect(kept.keys.subarray(at(kept.capacity), at(kept.capacity) + n)).toEqual(
        before.keys.subarray(at(before.capacity), at(before.capacity) + n),
      );
    }
    const restored = await teacherForced(model.decoder, cache, prompt, answer);
    restored.forEach((p, r) => expect(logP(p)).toEqual(logP(whole[r])));
  });

  it("finds every turn's tokens in the context a build prefills", () => {
    const { conversation } = loadLocomo([sample]);
    const frame = chatFrame(model.tokenizer);
    const context = [...frame.open, ...frame.history(renderContext(conversation))];
    const spans = turnSpans(frame, conversation);
    const turns = conversation.sessions.flatMap((s) => s.turns);
    expect([...spans.keys()]).toEqual(turns.map((t) => t.id));
    for (const turn of turns) {
      const [start, end] = spans.get(turn.id) as [number, number];
      expect(model.tokenizer.decode(context.slice(start, end)).trim()).toBe(formatTurnLine(turn));
    }
  });
});

/**
 * `epicache eval`: how much of the full cache's quality each method keeps, per budget and question
 * category. Each (method, budget, conversation) is one job: build the caches exactly as `build`
 * does, then for every selected question route it by the manifest's rule, answer it greedily (token
 * F1 against the gold answer), and teacher-force the gold answer on this cache and on the full one
 * (mean per-token KL). For EpiCache, each question's line also records whether every routing rule
 * would have picked an episode holding its evidence (`hits`), the one used included.
 * Every method, Full KV included, runs through the same runtime and prompts, so differences come
 * from the cache alone. Results are appended to results.jsonl as jobs finish; a rerun skips them.
 */
import { createHash } from "node:crypto";
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  renameSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { basename, join } from "node:path";
import {
  cutToSessions,
  EpicacheError,
  isEpicacheError,
  isValidId,
  lexicalTerms,
  loadConversation,
  locomoSampleIds,
  recentTurns,
  renderContext,
  routeQuestion,
  segmentWindows,
  tokenF1,
  type Conversation,
  type QaItem,
  type RoutingData,
  type MedoidCount,
  type RoutingRule,
} from "@epicache/shared";
import type { OnnxEmbedder } from "../embedder";
import {
  buildEpisodes,
  EpisodeStore,
  updateOrBuild,
  manifestRouting,
  questionPrompt,
  type BuildOptions,
  type BuildTarget,
  type EpisodeManifest,
} from "../episodes";
import { FsObjectStore } from "../store";
import { generate, type ChatModel, type KvCache } from "../runtime";
import type { LogProbs } from "../runtime/log-probs";
import { chatModelRef, type ModelRef } from "../model-registry";
import { QUESTION_ROOM, type PositionMode } from "../prefill";
import { chatFrame } from "../press";
import {
  buildMethodOf,
  EVAL_METHODS,
  isEvalMethod,
  resolveEvalMethod,
  type EvalMethodInfo,
} from "./eval-methods";
import { evidenceKept, keptByTurn, turnSpans, type TurnSpans } from "./evidence";
import { meanKl, teacherForced, withPrompt } from "./fidelity";
import { selectQuestions, type Dataset, type EvalQuestion } from "./questions";
import { parseQuestionRows, withIntervals, type QuestionRow, type ResultRow } from "./report";

/** How much of each conversation an evaluation reads: all of it, or its first sessions within --max-context. */
export const HISTORIES = ["whole", "cut"] as const;
export type History = (typeof HISTORIES)[number];

export interface EvalConfig {
  data: string;
  format: Dataset;
  /** Conversation ids to run (LoCoMo sample ids, REALTALK file ids); null: all. */
  conversations: string[] | null;
  methods: string[];
  budgets: number[];
  /** "whole": every session; "cut": the first sessions within `maxContext` tokens. */
  history: History;
  /** Where kept entries sit in every method that does not say (epicache-original keeps original positions). */
  positions: PositionMode;
  /** The cut history's length, and the length of the `recent` method's window. */
  maxContext: number;
  episodes: number;
  /** How EpiCache builds route questions (recorded in their manifests). A config.json without it was routed by centroid. */
  routing: RoutingRule;
  /**
   * Representative windows of EpiCache methods whose name does not say (`epicache:n-medoid=3` does).
   * A config.json without it was written while the default was 8.
   */
  nMedoid: MedoidCount;
  block: number;
  maxAnswerTokens: number;
  seed: number;
  numerics: string;
}

/** The rules every EpiCache question's line records a hit for, by name (those of `npm run bench:routing`). */
const COMPARED_RULES: Record<string, RoutingRule> = {
  centroid: { rule: "centroid" },
  window: { rule: "window" },
  ...Object.fromEntries([3, 5, 8].map((k) => [`vote-${k}`, { rule: "vote", k } as const])),
  lexical: { rule: "lexical" },
};

interface Job {
  conversation: string;
  /** A registry name, possibly with options (eval-methods.ts). */
  method: string;
  budget: number | null;
}

const jobKey = (j: Pick<ResultRow, "conversation" | "method" | "budget">) =>
  `${j.conversation}\t${j.method}\t${j.budget ?? "-"}`;

/** Conversations of the data path: a LoCoMo file (its samples), a REALTALK file, or a folder of them. */
export function loadDataset(
  path: string,
  format: Dataset,
  ids: string[] | null,
): Array<{ conversation: Conversation; qa: readonly QaItem[] }> {
  const files =
    existsSync(path) && statSync(path).isDirectory()
      ? readdirSync(path)
          .filter((f) => f.endsWith(".json"))
          .sort()
          .map((f) => join(path, f))
      : [path];
  const out: Array<{ conversation: Conversation; qa: readonly QaItem[] }> = [];
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (e) {
      throw new EpicacheError("invalid_argument", `cannot read ${file}: ${(e as Error).message}`);
    }
    if (format === "locomo") {
      for (const sampleId of locomoSampleIds(text)) {
        if (ids && !ids.includes(sampleId)) continue;
        const loaded = loadConversation(text, { format, sampleId });
        out.push({ conversation: loaded.conversation, qa: loaded.qa });
      }
    } else {
      const id = basename(file).replace(/\.json$/, "");
      if (ids && !ids.includes(id)) continue;
      const loaded = loadConversation(text, { format, id });
      out.push({ conversation: loaded.conversation, qa: loaded.qa });
    }
  }
  if (ids)
    for (const id of ids)
      if (!out.some((c) => c.conversation.id === id))
        throw new EpicacheError("invalid_argument", `no conversation "${id}" in ${path}`);
  if (out.length === 0) throw new EpicacheError("invalid_argument", `no conversations in ${path}`);
  return out;
}

export interface EvalProgress {
  job: number;
  jobs: number;
  label: string;
  stage: string;
  /** Seconds left, from the jobs done so far (null before the first). */
  etaSeconds: number | null;
  /** How far the stage is: blocks of the build's prefill, or questions answered. */
  step?: { done: number; total: number; unit: "blocks" | "questions" };
}

export async function runEval(
  model: ChatModel,
  embedder: OnnxEmbedder,
  config: EvalConfig,
  outDir: string,
  hooks: { log?: (m: string) => void; onProgress?: (p: EvalProgress) => void } = {},
): Promise<ResultRow[]> {
  const methods = config.methods.map((m) => {
    if (!isEvalMethod(m))
      throw new EpicacheError(
        "invalid_argument",
        `method "${m}" is not one of ${EVAL_METHODS.join(", ")} (options: epicache:n-medoid=3, :alloc=output, :positions=original, :updates=session)`,
      );
    return m;
  });
  mkdirSync(outDir, { recursive: true });
  const configPath = join(outDir, "config.json");
  const ref = chatModelRef(model);
  const configText = `${JSON.stringify({ ...config, model: ref.id, fingerprint: ref.fingerprint }, null, 1)}\n`;
  if (existsSync(configPath))
    checkResumable(readFileSync(configPath, "utf8"), configText, ref, outDir);
  writeFileSync(configPath, configText);
  const resultsPath = join(outDir, "results.jsonl");
  // One line per question and job: what the paired intervals are computed from.
  const questionsPath = join(outDir, "questions.jsonl");
  const rows: ResultRow[] = existsSync(resultsPath)
    ? readFileSync(resultsPath, "utf8")
        .split("\n")
        .filter((l) => l.trim())
        .map((l) => JSON.parse(l) as ResultRow)
    : [];
  const done = new Set(rows.filter((r) => r.category === "all").map((r) => jobKey(r)));

  const data = loadDataset(config.data, config.format, config.conversations);
  const frame = chatFrame(model.tokenizer);
  const budgeted = (m: string) => buildMethodOf(m).budgeted;
  const jobs: Job[] = data.flatMap(({ conversation }) => [
    ...methods
      .filter((m) => !budgeted(m))
      .map((method) => ({ conversation: conversation.id, method, budget: null })),
    ...methods
      .filter(budgeted)
      .flatMap((method) =>
        config.budgets.map((budget) => ({ conversation: conversation.id, method, budget })),
      ),
  ]);
  const window = model.config.contextLength;
  const count = (text: string) => model.tokenizer.encode(text).length;
  const started = performance.now();
  let finished = 0;
  let index = 0;
  for (const { conversation, qa } of data) {
    const kept =
      config.history === "cut"
        ? cutToSessions(conversation, config.maxContext - frame.open.length, count)
        : conversation;
    const { questions, skipped } = selectQuestions(qa, kept, config.format);
    // The recent window: what `recent` keeps, and what makes a question's evidence old or recent.
    const recent = recentTurns(kept, config.maxContext - frame.open.length, count);
    const recentIds = new Set(recent.sessions.flatMap((s) => s.turns.map((t) => t.id)));
    const ageOf = (q: EvalQuestion) =>
      q.evidence.every((id) => !recentIds.has(id)) ? "evidence-old" : "evidence-recent";
    const contextTokens = frame.open.length + frame.history(renderContext(kept)).length;
    hooks.log?.(
      `${conversation.id}: ${kept.sessions.length} of ${conversation.sessions.length} sessions, ${contextTokens} context tokens (window ${window}); ${questions.length} questions, ${questions.filter((q) => ageOf(q) === "evidence-old").length} with all their evidence before the last ${config.maxContext} tokens (left out: ${skipped.adversarial} adversarial, ${skipped.outside} with evidence outside the context, ${skipped.noEvidence} without evidence)`,
    );
    const windowOf = new Map<string, number>();
    const windows = segmentWindows(kept, 4);
    windows.forEach((w) => w.turnIds.forEach((id) => windowOf.set(id, w.index)));
    // The builds embed the same windows with the same embedder: what comparing the rules needs.
    let windowVectors: Float32Array[] | null = null;
    const windowTerms = windows.map((w) => lexicalTerms(w.text));
    const cacheRoot = join(outDir, "caches");
    // The full cache is the KL reference where it is one: a history within the model's window (beyond
    // it, full attention runs at positions the model was never trained on). Built (or found) first.
    const fullValid = contextTokens + QUESTION_ROOM <= window;
    const spans = turnSpans(frame, kept);
    // The full build and its greedy answers belong to the full job's time (when there is one): they
    // run here, before the jobs.
    const fullStarted = { wall: performance.now(), cpu: process.cpuUsage() };
    const full =
      fullValid || methods.includes("full")
        ? await buildJob(
            model,
            embedder,
            conversation,
            config,
            { conversation: conversation.id, method: "full", budget: null },
            cacheRoot,
            spans,
            hooks.log,
          )
        : null;
    const fullCache = fullValid && full ? full.caches[0] : null;
    // Each question's prompt, and the room a cache needs for the longest of them and its answer:
    // every cache is sized for that once, and each question runs on it in place (withPrompt).
    const prompts = questions.map((q) =>
      questionPrompt(frame, q.question, { dateHint: q.category === "temporal" }),
    );
    const room = Math.max(0, ...prompts.map((p) => p.length)) + config.maxAnswerTokens;
    // The full cache's greedy answers (the path the paper's fidelity follows: gold tokens are off the
    // model's path when its answers are poor) and its distributions along them and along the gold
    // answers, the KL references of every other job (not computed when only the full job is left).
    const golds = questions.map((q) => model.tokenizer.encode(q.answer.trim()));
    const pending = jobs.filter((j) => j.conversation === conversation.id && !done.has(jobKey(j)));
    const reference = fullCache
      ? await fullReference(model, fullCache, prompts, golds, room, {
          conversation: conversation.id,
          maxAnswerTokens: config.maxAnswerTokens,
          path: join(outDir, "greedy.jsonl"),
          forced: pending.some((j) => j.method !== "full"),
        })
      : null;
    const fullTook = {
      wall: performance.now() - fullStarted.wall,
      cpu: process.cpuUsage(fullStarted.cpu),
    };
    const questionEmbeddings = await embedder.embed(questions.map((q) => q.question));
    for (const job of jobs.filter((j) => j.conversation === conversation.id)) {
      index++;
      if (done.has(jobKey(job))) continue;
      // A job stopped while answering starts over: its earlier lines go, so each question is in the file once.
      dropQuestionLines(questionsPath, job);
      const jobStarted = { wall: performance.now(), cpu: process.cpuUsage() };
      if (job.method === "full" && full) {
        jobStarted.wall -= fullTook.wall;
        jobStarted.cpu = {
          user: jobStarted.cpu.user - fullTook.cpu.user,
          system: jobStarted.cpu.system - fullTook.cpu.system,
        };
      }
      const label = `${job.method}${job.budget === null ? "" : ` @${job.budget}`} on ${job.conversation}`;
      const eta =
        finished > 0
          ? ((performance.now() - started) / 1000 / finished) * (jobs.length - index + 1)
          : null;
      hooks.onProgress?.({ job: index, jobs: jobs.length, label, stage: "build", etaSeconds: eta });
      const onBuild = (done: number, total: number) =>
        hooks.onProgress?.({
          job: index,
          jobs: jobs.length,
          label,
          stage: "build",
          etaSeconds: eta,
          step: { done, total, unit: "blocks" },
        });
      const built =
        job.method === "full" && full
          ? full
          : await buildJob(
              model,
              embedder,
              conversation,
              config,
              job,
              cacheRoot,
              spans,
              hooks.log,
              recent,
              kept,
              onBuild,
            );
      // Sized once for the longest question and its answer: each question runs on them in place.
      for (const c of built.caches) c.fit(room);
      // An episodic method routes each question to one of its caches: the routing hit says how often to the one with its evidence.
      const episodic = buildMethodOf(job.method).episodic;
      const per: Array<{
        q: EvalQuestion;
        f1: number;
        kl: number | null;
        klGreedy: number | null;
        evidenceKept: number | null;
        hit: number | null;
        tokens: number;
        ms: number;
      }> = [];
      let maxPosition = built.maxPosition;
      const routing = manifestRouting(built.manifest);
      let compared: RoutingData | null = null;
      if (episodic) {
        windowVectors ??= await embedder.embed(windows.map((w) => w.text));
        const episodeOf = new Array<number>(windows.length).fill(-1);
        built.manifest.episodes.forEach((e, index) =>
          e.windows.forEach((w) => (episodeOf[w] = index)),
        );
        if (episodeOf.length !== windows.length || episodeOf.includes(-1))
          throw new Error(
            `${label}: the build's episodes do not partition the ${windows.length} windows eval segmented`,
          );
        compared = {
          centroids: routing.data.centroids,
          windows: windowVectors,
          windowEpisodes: episodeOf,
          windowTerms,
        };
      }
      for (let i = 0; i < questions.length; i++) {
        hooks.onProgress?.({
          job: index,
          jobs: jobs.length,
          label,
          stage: "answer",
          etaSeconds: eta,
          step: { done: i, total: questions.length, unit: "questions" },
        });
        const q = questions[i];
        const asked = { vector: questionEmbeddings[i], text: q.question };
        const routed = routeQuestion(routing.rule, asked, routing.data).episode;
        const cache = built.caches[routed];
        const prompt = prompts[i];
        // The gold answer as the model would write it (right after the assistant header), and the
        // full cache's greedy answer: teacher-forced on this cache against the full cache's references.
        const gold = golds[i];
        const ref = reference?.[i];
        const path = ref?.greedy.tokens ?? [];
        if (ref && gold.length > 0)
          maxPosition = Math.max(maxPosition, cache.nextPosition + prompt.length + gold.length - 2);
        if (ref && path.length > 0)
          maxPosition = Math.max(maxPosition, cache.nextPosition + prompt.length + path.length - 2);
        // The full job's answer is the full cache's greedy answer, generated the same way
        // (fullReference), and its KL is 0 by definition. Any other job runs the prompt on its cache
        // once: both answers are teacher-forced from its last token, then the answer is generated.
        const reused = job.method === "full" ? ref?.greedy : undefined;
        const { ids, ms, kl, klGreedy } =
          reused?.ms !== undefined
            ? {
                ids:
                  reused.tokens.at(-1) === model.tokenizer.eosId
                    ? reused.tokens.slice(0, -1)
                    : reused.tokens,
                ms: reused.ms,
                kl: gold.length > 0 ? 0 : null,
                klGreedy: path.length > 0 ? 0 : null,
              }
            : await withPrompt(model.decoder, cache, prompt, async (last) => {
                const against = async (p: LogProbs[] | undefined, answer: readonly number[]) =>
                  p && answer.length > 0
                    ? job.method === "full"
                      ? 0
                      : meanKl(p, await teacherForced(model.decoder, cache, [last], answer))
                    : null;
                const kl = await against(ref?.gold, gold);
                const klGreedy = await against(ref?.path, path);
                return {
                  kl,
                  klGreedy,
                  ...(await answerFrom(model, cache, last, config.maxAnswerTokens)),
                };
              });
        const answer = model.tokenizer.decode(ids);
        let tokens = ids.length;
        // The question starts at the cache's next position; its last token and the answer's follow.
        maxPosition = Math.max(
          maxPosition,
          cache.nextPosition + prompt.length + Math.max(0, tokens - 1),
        );
        tokens = Math.max(0, tokens - 1);
        const evidence = built.kept ? evidenceKept(built.kept[routed], q.evidence) : null;
        const holdsEvidence = (episode: number) => {
          const members = new Set(built.manifest.episodes[episode].windows);
          return q.evidence.some((id) => members.has(windowOf.get(id) ?? -1)) ? 1 : 0;
        };
        const hit = episodic ? holdsEvidence(routed) : null;
        const hits =
          compared === null
            ? null
            : Object.fromEntries(
                Object.entries(COMPARED_RULES).map(([name, rule]) => [
                  name,
                  holdsEvidence(routeQuestion(rule, asked, compared).episode),
                ]),
              );
        per.push({
          q,
          f1: tokenF1(answer, q.answer),
          kl,
          klGreedy,
          evidenceKept: evidence,
          hit,
          tokens,
          ms,
        });
        appendFileSync(
          questionsPath,
          `${JSON.stringify({
            conversation: job.conversation,
            method: job.method,
            budget: job.budget,
            question: i,
            category: q.category,
            age: ageOf(q),
            f1: per[i].f1,
            kl,
            klGreedy,
            hit,
            routed,
            evidenceKept: evidence,
            answer,
            ...(hits === null ? {} : { hits }),
          })}\n`,
        );
      }
      hooks.onProgress?.({
        job: index,
        jobs: jobs.length,
        label,
        stage: "answer",
        etaSeconds: eta,
        step: { done: questions.length, total: questions.length, unit: "questions" },
      });
      const entries = built.caches.reduce((n, c) => n + c.entries, 0) / built.caches.length;
      const fullEntries = full
        ? full.caches[0].entries
        : contextTokens * model.config.numLayers * model.config.numKvHeads;
      const categories = [
        ...new Set([...per.map((p) => p.q.category), ...per.map((p) => ageOf(p.q))]),
        "all",
      ];
      const decodeTokens = per.reduce((n, p) => n + p.tokens, 0);
      const cpu = process.cpuUsage(jobStarted.cpu);
      const jobSeconds = (performance.now() - jobStarted.wall) / 1000;
      const jobCpuSeconds = (cpu.user + cpu.system) / 1e6;
      for (const category of categories) {
        const sel =
          category === "all"
            ? per
            : per.filter((p) => p.q.category === category || ageOf(p.q) === category);
        const mean = (f: (p: (typeof per)[number]) => number) =>
          sel.length ? sel.reduce((n, p) => n + f(p), 0) / sel.length : 0;
        const row: ResultRow = {
          method: job.method,
          budget: job.budget,
          conversation: job.conversation,
          category,
          questions: sel.length,
          f1: mean((p) => p.f1),
          kl: sel.some((p) => p.kl === null) ? null : mean((p) => p.kl ?? 0),
          klGreedy: sel.some((p) => p.klGreedy === null) ? null : mean((p) => p.klGreedy ?? 0),
          evidenceKept: sel.some((p) => p.evidenceKept === null)
            ? null
            : mean((p) => p.evidenceKept ?? 0),
          routingHit: episodic ? mean((p) => p.hit ?? 0) : null,
          entries,
          compression: fullEntries / entries,
          buildSeconds: built.seconds,
          decodeMsPerToken: decodeTokens ? per.reduce((n, p) => n + p.ms, 0) / decodeTokens : 0,
          peakRssBytes: process.resourceUsage().maxRSS * 1024,
          jobSeconds,
          jobCpuSeconds,
          maxPosition,
          window,
          history: config.history,
        };
        rows.push(row);
        appendFileSync(resultsPath, `${JSON.stringify(row)}\n`);
      }
      finished++;
      const last = rows[rows.length - 1];
      hooks.log?.(
        `${label}: F1 ${(last.f1 * 100).toFixed(1)}${last.kl === null ? "" : `, KL ${last.kl.toFixed(3)}`}, ${questions.length} questions, positions up to ${maxPosition} (window ${window})`,
      );
    }
  }
  // Intervals against EpiCache need its questions and the other method's: computed once all jobs are
  // done, over questions.jsonl, and the rows rewritten (atomically: a stop here loses nothing).
  const questionRows = existsSync(questionsPath)
    ? parseQuestionRows(readFileSync(questionsPath, "utf8"))
    : [];
  const final = withIntervals(rows, questionRows);
  writeFileSync(`${resultsPath}.tmp`, final.map((r) => `${JSON.stringify(r)}\n`).join(""));
  renameSync(`${resultsPath}.tmp`, resultsPath);
  return final;
}

/** Rewrites questions.jsonl (atomically) without the lines of `job`, if it has any. */
function dropQuestionLines(
  path: string,
  job: Pick<ResultRow, "conversation" | "method" | "budget">,
): void {
  if (!existsSync(path)) return;
  const lines = readFileSync(path, "utf8")
    .split("\n")
    .filter((l) => l.trim() !== "");
  const kept = lines.filter((l) => jobKey(JSON.parse(l) as QuestionRow) !== jobKey(job));
  if (kept.length === lines.length) return;
  writeFileSync(`${path}.tmp`, kept.map((l) => `${l}\n`).join(""));
  renameSync(`${path}.tmp`, path);
}

/**
 * Refuses to add results to `outDir` when its config.json records another configuration or other
 * weights. The model's name is not compared: configs written before models were named by id hold the
 * builder's path there, and the fingerprint says whether the weights are the same.
 */
function checkResumable(
  previousText: string,
  configText: string,
  ref: ModelRef,
  outDir: string,
): void {
  let previous: Record<string, unknown>;
  try {
    previous = JSON.parse(previousText) as Record<string, unknown>;
  } catch (e) {
    throw new EpicacheError(
      "invalid_argument",
      `${outDir}/config.json: ${(e as Error).message}; use another --out`,
    );
  }
  if (previous.fingerprint !== ref.fingerprint) {
    throw new EpicacheError(
      "model_mismatch",
      `${outDir} holds results of model ${String(previous.model)} (fingerprint ${String(previous.fingerprint)}), not of ${ref.id} (fingerprint ${ref.fingerprint}): pass that model with --model, or use another --out`,
    );
  }
  // A config.json from before routing rules stands for centroid routing; one from before the
  // recorded window count, for the default of that time (8).
  const next = JSON.parse(configText) as Record<string, unknown>;
  const before = {
    ...previous,
    routing: (previous.routing ?? { rule: "centroid" }) as RoutingRule,
    nMedoid: (previous.nMedoid ?? 8) as MedoidCount,
    model: ref.id,
  };
  if (canonical(before) === canonical(next)) return;
  // Only options with a flag differ (a default changed, say): name the flags that resume.
  if (canonical({ ...before, routing: next.routing, nMedoid: next.nMedoid }) === canonical(next)) {
    const flags = [
      canonical(before.routing) !== canonical(next.routing)
        ? before.routing.rule === "vote"
          ? `--routing vote --vote-k ${before.routing.k}`
          : `--routing ${before.routing.rule}`
        : null,
      before.nMedoid !== next.nMedoid ? `--n-medoid ${before.nMedoid}` : null,
    ].filter(Boolean);
    throw new EpicacheError(
      "invalid_argument",
      `${outDir} holds results made with ${flags.join(" ")}${previous.routing === undefined || previous.nMedoid === undefined ? " (defaults its config.json predates)" : ""}: pass ${flags.join(" ")} to add to them, or use another --out`,
    );
  }
  throw new EpicacheError(
    "invalid_argument",
    `${outDir} holds results of another configuration (config.json differs); use another --out`,
  );
}

/** JSON with object keys sorted, to compare configs whatever order their fields were written in. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_, v: unknown) =>
    v !== null && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

interface BuiltJob {
  manifest: EpisodeManifest;
  caches: KvCache[];
  seconds: number;
  /** The largest position the build's attention used. */
  maxPosition: number;
  /** Per episode, per turn of the evaluated history: [entries kept, entries of the turn] (evidence.ts); absent in older builds. */
  kept: Array<Record<string, [number, number]>> | null;
}

/**
 * Builds a job's caches (or reuses a complete earlier build of the same job) and loads them. They go to
 * a filesystem episode store under `out/caches` (tenant "eval", the job as the version), stored as f32
 * so that differences between methods come from the cache alone, not from storage rounding. A method
 * that builds from the recent window only (`recent`) builds from `recent`, the conversation's latest turns.
 */
async function buildJob(
  model: ChatModel,
  embedder: OnnxEmbedder,
  conversation: Conversation,
  config: EvalConfig,
  job: Job,
  root: string,
  spans: TurnSpans,
  log?: (m: string) => void,
  recent?: Conversation,
  evaluated?: Conversation,
  onBlocks?: (done: number, total: number) => void,
): Promise<BuiltJob> {
  const store = new EpisodeStore(new FsObjectStore(root));
  const variant = resolveEvalMethod(job.method) as EvalMethodInfo;
  // A job that grows by updates publishes a version per session: under a tenant of its own, so that
  // collecting its superseded versions touches no other job's.
  const tenant = variant.updates
    ? `grow-${safe(job.method)}-${job.budget ?? "full"}`.slice(0, 64)
    : "eval";
  const at = {
    store,
    tenant,
    conversation: storeId(conversation.id),
    version: `${safe(job.method)}-${job.budget ?? "full"}`,
    dtype: "f32" as const,
  };
  const recorded = join(root, `${at.conversation}.${at.version}.build.json`);
  let manifest: EpisodeManifest;
  let seconds = 0;
  let maxPosition = 0;
  let kept: BuiltJob["kept"] = null;
  try {
    manifest = await store.readManifest(at.tenant, at.conversation, at.version);
    if (existsSync(recorded))
      ({
        seconds,
        maxPosition,
        kept = null,
      } = JSON.parse(readFileSync(recorded, "utf8")) as Partial<BuiltJob> & {
        seconds: number;
        maxPosition: number;
      });
  } catch (e) {
    if ((e as EpicacheError).code !== "store_not_found") throw e;
    const t0 = performance.now();
    const source = variant.recentOnly && recent ? recent : conversation;
    // Positions in the source's own context: the recent window's differ from the history's.
    const sourceSpans =
      source === conversation ? spans : turnSpans(chatFrame(model.tokenizer), source);
    const keptNow: NonNullable<BuiltJob["kept"]> = [];
    const slots = model.config.numLayers * model.config.numKvHeads;
    const options: BuildOptions = {
      method: variant.method,
      budget: job.budget ?? 0,
      blockSize: config.block,
      episodes: config.episodes,
      seed: config.seed,
      maxContext: config.history === "cut" ? config.maxContext : undefined,
      positions: variant.positions ?? config.positions,
      alloc: variant.alloc,
      nMedoid: variant.nMedoid ?? config.nMedoid,
      routing: config.routing,
      log,
      onProgress: ({ episode, episodes, block, blocks }) =>
        onBlocks?.(episode * blocks + block, episodes * blocks),
      onCache: (_, cache) => {
        // Turns of the evaluated history the source does not hold count as kept by none of its entries.
        const byTurn = keptByTurn(cache, sourceSpans);
        for (const [id, [start, end]] of spans) byTurn[id] ??= [0, (end - start) * slots];
        keptNow.push(byTurn);
      },
    };
    let builds: Record<string, number> | undefined;
    if (variant.updates === "session") {
      const grown = await growBySession(
        model,
        embedder,
        evaluated ?? conversation,
        at,
        { ...options, maxContext: undefined, onCache: undefined },
        `${recorded}.partial`,
      );
      ({ manifest, builds } = grown);
      maxPosition = grown.maxPosition;
      // Updated caches come back from the store, which does not keep where each entry came from.
      kept = null;
    } else {
      const report = await buildEpisodes(model, embedder, source, at, options);
      manifest = report.manifest;
      maxPosition = report.positions.max;
      kept = keptNow;
    }
    seconds = (performance.now() - t0) / 1000;
    writeFileSync(
      recorded,
      `${JSON.stringify({ seconds, maxPosition, kept, ...(builds ? { builds } : {}) })}\n`,
    );
  }
  const caches: KvCache[] = [];
  for (const e of manifest.episodes) caches.push(await store.loadEpisode(manifest, e.id));
  return { manifest, caches, seconds, maxPosition, kept };
}

/**
 * The caches the service holds after `conversation` arrived one session at a time, each followed by a
 * rebuild webhook: a build of the first session, then per session an update of the version before,
 * or a full build of everything so far when the update policy refuses one (updateOrBuild)
 * (regrowth, drift: update-episodes.ts). Each version is published and the one before collected; the
 * last one is `at.version`. Returns its manifest, the largest position any build or update used, and
 * how many of each kind ran. A stopped run goes on from its last published session: `progressPath`
 * records where it stands.
 */
async function growBySession(
  model: ChatModel,
  embedder: OnnxEmbedder,
  conversation: Conversation,
  at: BuildTarget & { store: EpisodeStore },
  options: BuildOptions,
  progressPath: string,
): Promise<{ manifest: EpisodeManifest; maxPosition: number; builds: Record<string, number> }> {
  const { sessions } = conversation;
  const versionAt = (k: number) => (k === sessions.length ? at.version : `${at.version}.s${k}`);
  const upTo = (k: number): Conversation => ({ ...conversation, sessions: sessions.slice(0, k) });
  type Saved = { sessions: number; maxPosition: number; builds: Record<string, number> };
  let state: Saved = { sessions: 0, maxPosition: 0, builds: { full: 0, incremental: 0 } };
  let manifest: EpisodeManifest | null = null;
  if (existsSync(progressPath)) {
    const saved = JSON.parse(readFileSync(progressPath, "utf8")) as Saved;
    try {
      manifest = await at.store.readManifest(at.tenant, at.conversation, versionAt(saved.sessions));
      state = saved;
      options.log?.(
        `going on from session ${saved.sessions + 1} of ${sessions.length} (${saved.builds.full} full builds, ${saved.builds.incremental} updates so far)`,
      );
    } catch (e) {
      if (!isEpicacheError(e) || e.code !== "store_not_found") throw e;
    }
  }
  for (let k = state.sessions + 1; k <= sessions.length; k++) {
    const session = sessions[k - 1];
    const target = { ...at, version: versionAt(k) };
    let report: { manifest: EpisodeManifest; positions: { max: number } };
    if (manifest) {
      const next = {
        delta: { ...conversation, sessions: [session] },
        cursor: { index: session.index, turns: session.turns.length },
      };
      const made = await updateOrBuild(model, embedder, manifest, next, upTo(k), target, options);
      state.builds[made.kind === "incremental" ? "incremental" : "full"]++;
      report = made;
    } else {
      report = await buildEpisodes(model, embedder, upTo(k), target, options);
      state.builds.full++;
    }
    manifest = report.manifest;
    state = {
      ...state,
      sessions: k,
      maxPosition: Math.max(state.maxPosition, report.positions.max),
    };
    writeFileSync(progressPath, `${JSON.stringify(state)}\n`);
    await at.store.gc(at.tenant, at.conversation, { graceMs: 0 });
  }
  if (!manifest) throw new Error("growBySession: a conversation without sessions");
  return { manifest, maxPosition: state.maxPosition, builds: state.builds };
}

/**
 * A greedy answer generated on `cache` holding a prompt but its `last` token (withPrompt): its token
 * ids and the decode time from the first generated token on (the prompt's prefill excluded). The
 * cache is left as it was found, ready for the next continuation of the same prompt.
 */
async function answerFrom(
  model: ChatModel,
  cache: KvCache,
  last: number,
  maxTokens: number,
): Promise<{ ids: number[]; ms: number }> {
  const mark = cache.mark();
  const ids: number[] = [];
  let first = 0;
  try {
    for await (const t of generate(model, [last], { maxTokens, cache, refit: false })) {
      if (ids.length === 0) first = performance.now();
      ids.push(t.id);
    }
  } finally {
    cache.rewind(mark);
  }
  return { ids, ms: ids.length > 1 ? performance.now() - first : 0 };
}

/** The full cache's greedy answer to one question (see {@link fullReference}). */
interface GreedyAnswer {
  /** Token ids, ending with the end-of-text token when the answer ended before the token limit. */
  tokens: number[];
  /** Decode time from the first generated token on, as jobs measure it; absent in files of older runs. */
  ms?: number;
}

/** What the full cache gives one question: the references every other job is compared with. */
interface FullReference {
  greedy: GreedyAnswer;
  /** The distributions along the gold answer and along the greedy answer (empty when not asked for). */
  gold: LogProbs[];
  path: LogProbs[];
}

/**
 * Per question, the full cache's greedy answer (its tokens end with the end-of-text token when the
 * answer ended before the token limit, so that ending is compared too), read from `path` when an
 * earlier run wrote it for this conversation, else generated as jobs answer and appended; and, with
 * `forced`, the full cache's distributions along the gold answer and along the greedy one. Each
 * question's prompt runs once on the cache, sized first for `room` more entries, and all of it is
 * taken off again. The greedy answers are the full job's answers too: it answers from the same cache
 * the same way.
 */
async function fullReference(
  model: ChatModel,
  full: KvCache,
  prompts: readonly (readonly number[])[],
  golds: readonly (readonly number[])[],
  room: number,
  opts: { conversation: string; maxAnswerTokens: number; path: string; forced: boolean },
): Promise<FullReference[]> {
  const known = new Map<number, GreedyAnswer>();
  if (existsSync(opts.path)) {
    for (const line of readFileSync(opts.path, "utf8").split("\n")) {
      if (!line.trim()) continue;
      const r = JSON.parse(line) as { conversation: string; question: number } & GreedyAnswer;
      if (r.conversation === opts.conversation)
        known.set(r.question, { tokens: r.tokens, ms: r.ms });
    }
  }
  full.fit(room);
  const out: FullReference[] = [];
  for (let i = 0; i < prompts.length; i++) {
    const saved = known.get(i);
    if (saved && !opts.forced) {
      out.push({ greedy: saved, gold: [], path: [] });
      continue;
    }
    out.push(
      await withPrompt(model.decoder, full, prompts[i], async (last) => {
        let greedy = saved;
        if (!greedy) {
          const { ids: tokens, ms } = await answerFrom(model, full, last, opts.maxAnswerTokens);
          if (tokens.length < opts.maxAnswerTokens && model.tokenizer.eosId !== undefined)
            tokens.push(model.tokenizer.eosId);
          greedy = { tokens, ms };
          appendFileSync(
            opts.path,
            `${JSON.stringify({ conversation: opts.conversation, question: i, tokens, ms })}\n`,
          );
        }
        const forced = async (answer: readonly number[]) =>
          opts.forced && answer.length > 0
            ? teacherForced(model.decoder, full, [last], answer)
            : [];
        return { greedy, gold: await forced(golds[i]), path: await forced(greedy.tokens) };
      }),
    );
  }
  return out;
}

/** A conversation id as a store id (LoCoMo's and REALTALK's ids already are). */
function storeId(id: string): string {
  const s = safe(id)
    .replace(/^[^A-Za-z0-9]+/, "")
    .replace(/\.\.+/g, ".")
    .slice(0, 64);
  return isValidId(s) ? s : `c${createHash("sha256").update(id).digest("hex").slice(0, 16)}`;
}

function safe(id: string): string {
  return id.replace(/[^A-Za-z0-9._-]/g, "_");
}

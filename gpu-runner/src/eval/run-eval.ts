/**
 * `epicache eval`: how much of the full cache's quality each method keeps, per budget and question
 * category. Each (method, budget, conversation) is one job: build the caches exactly as `build`
 * does, then for every selected question route it, answer it greedily (token F1 against the gold
 * answer), and teacher-force the gold answer on this cache and on the full one (mean per-token KL).
 * Every method, Full KV included, runs through the same runtime and prompts, so differences come
 * from the cache alone. Results are appended to results.jsonl as jobs finish; a rerun skips them.
 */
import { createHash } from "node:crypto";
import { appendFileSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import {
  cutToSessions, EpicacheError, isValidId, loadConversation, locomoSampleIds, nearestCentroid, segmentWindows, tokenF1,
  type Conversation, type QaItem,
} from "@epicache/shared";
import type { OnnxEmbedder } from "../embedder";
import { buildEpisodes, EpisodeStore, questionPrompt, type EpisodeManifest } from "../episodes";
import { FsObjectStore } from "../store";
import { generate, type ChatModel, type KvCache } from "../model";
import { chatModelRef, type ModelRef } from "../models";
import { chatFrame, isMethod, type Method } from "../press";
import { meanKl, teacherForced } from "./fidelity";
import { selectQuestions, type Dataset, type EvalQuestion } from "./questions";
import type { ResultRow } from "./report";

export const EVAL_METHODS = ["full", "epicache", "epicache-noalloc", "snapkv", "infinipot", "kvzip", "keydiff", "streamingllm"] as const;

export interface EvalConfig {
  data: string;
  format: Dataset;
  /** Conversation ids to run (LoCoMo sample ids, REALTALK file ids); null: all. */
  conversations: string[] | null;
  methods: string[];
  budgets: number[];
  maxContext: number;
  episodes: number;
  block: number;
  maxAnswerTokens: number;
  seed: number;
  numerics: string;
}

interface Job {
  conversation: string;
  method: string;
  budget: number | null;
}

const jobKey = (j: Job) => `${j.conversation}\t${j.method}\t${j.budget ?? "-"}`;

/** Conversations of the data path: a LoCoMo file (its samples), a REALTALK file, or a folder of them. */
export function loadDataset(path: string, format: Dataset, ids: string[] | null): Array<{ conversation: Conversation; qa: readonly QaItem[] }> {
  const files = existsSync(path) && statSync(path).isDirectory()
    ? readdirSync(path).filter((f) => f.endsWith(".json")).sort().map((f) => join(path, f))
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
  if (ids) for (const id of ids) if (!out.some((c) => c.conversation.id === id)) throw new EpicacheError("invalid_argument", `no conversation "${id}" in ${path}`);
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
}

export async function runEval(model: ChatModel, embedder: OnnxEmbedder, config: EvalConfig, outDir: string, hooks: { log?: (m: string) => void; onProgress?: (p: EvalProgress) => void } = {}): Promise<ResultRow[]> {
  for (const m of config.methods) if (!(EVAL_METHODS as readonly string[]).includes(m)) throw new EpicacheError("invalid_argument", `method "${m}" is not one of ${EVAL_METHODS.join(", ")}`);
  mkdirSync(outDir, { recursive: true });
  const configPath = join(outDir, "config.json");
  const ref = chatModelRef(model);
  const configText = `${JSON.stringify({ ...config, model: ref.id, fingerprint: ref.fingerprint }, null, 1)}\n`;
  if (existsSync(configPath)) checkResumable(readFileSync(configPath, "utf8"), configText, ref, outDir);
  writeFileSync(configPath, configText);
  const resultsPath = join(outDir, "results.jsonl");
  const rows: ResultRow[] = existsSync(resultsPath)
    ? readFileSync(resultsPath, "utf8").split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l) as ResultRow)
    : [];
  const done = new Set(rows.filter((r) => r.category === "all").map((r) => jobKey(r)));

  const data = loadDataset(config.data, config.format, config.conversations);
  const frame = chatFrame(model.tokenizer);
  const jobs: Job[] = data.flatMap(({ conversation }) => [
    ...(config.methods.includes("full") ? [{ conversation: conversation.id, method: "full", budget: null }] : []),
    ...config.methods.filter((m) => m !== "full").flatMap((method) => config.budgets.map((budget) => ({ conversation: conversation.id, method, budget }))),
  ]);
  const started = performance.now();
  let finished = 0;
  let index = 0;
  for (const { conversation, qa } of data) {
    const kept = cutToSessions(conversation, config.maxContext - frame.open.length, (text) => model.tokenizer.encode(text).length);
    const { questions, skipped } = selectQuestions(qa, kept, config.format);
    hooks.log?.(`${conversation.id}: ${kept.sessions.length} of ${conversation.sessions.length} sessions; ${questions.length} questions (left out: ${skipped.adversarial} adversarial, ${skipped.outside} with evidence outside the context, ${skipped.noEvidence} without evidence)`);
    const windowOf = new Map<string, number>();
    segmentWindows(kept, 4).forEach((w) => w.turnIds.forEach((id) => windowOf.set(id, w.index)));
    const cacheRoot = join(outDir, "caches");
    // The full cache is every job's reference: built (or found) first.
    const full = await buildJob(model, embedder, conversation, config, { conversation: conversation.id, method: "full", budget: null }, cacheRoot, hooks.log);
    const fullCache = full.caches[0];
    const questionEmbeddings = await embedder.embed(questions.map((q) => q.question));
    // The full cache's teacher-forced distributions, computed once per question for every job.
    const fullForced = new Map<number, Float64Array[]>();
    const fullForcedFor = async (i: number, compute: () => Promise<Float64Array[]>) => {
      const hit = fullForced.get(i);
      if (hit) return hit;
      const value = await compute();
      fullForced.set(i, value);
      return value;
    };
    for (const job of jobs.filter((j) => j.conversation === conversation.id)) {
      index++;
      if (done.has(jobKey(job))) continue;
      const label = `${job.method}${job.budget === null ? "" : ` @${job.budget}`} on ${job.conversation}`;
      const eta = finished > 0 ? ((performance.now() - started) / 1000 / finished) * (jobs.length - index + 1) : null;
      hooks.onProgress?.({ job: index, jobs: jobs.length, label, stage: "build", etaSeconds: eta });
      const built = job.method === "full" ? full : await buildJob(model, embedder, conversation, config, job, cacheRoot, hooks.log);
      const per: Array<{ q: EvalQuestion; f1: number; kl: number; hit: number | null; tokens: number; ms: number }> = [];
      for (let i = 0; i < questions.length; i++) {
        hooks.onProgress?.({ job: index, jobs: jobs.length, label, stage: `question ${i + 1}/${questions.length}`, etaSeconds: eta });
        const q = questions[i];
        const routed = built.manifest.episodes.length > 1 ? nearestCentroid(questionEmbeddings[i], built.manifest.episodes.map((e) => e.centroid)).index : 0;
        const cache = built.caches[routed];
        const prompt = questionPrompt(frame, q.question, { dateHint: q.category === "temporal" });
        // Decode time per token: from the first generated token on (the prompt's prefill excluded).
        let first = 0;
        let answer = "";
        let tokens = 0;
        for await (const t of generate(model, prompt, { maxTokens: config.maxAnswerTokens, cache: cache.clone() })) {
          if (tokens === 0) first = performance.now();
          answer += t.text;
          tokens++;
        }
        const ms = tokens > 1 ? performance.now() - first : 0;
        tokens = Math.max(0, tokens - 1);
        // The gold answer as the model would write it, right after the assistant header.
        const gold = model.tokenizer.encode(q.answer.trim());
        const kl = job.method === "full" || gold.length === 0
          ? 0
          : meanKl(await fullForcedFor(i, () => teacherForced(model.decoder, fullCache, prompt, gold)), await teacherForced(model.decoder, cache, prompt, gold));
        const members = new Set(built.manifest.episodes[routed].windows);
        const hit = job.method.startsWith("epicache") ? (q.evidence.some((id) => members.has(windowOf.get(id) ?? -1)) ? 1 : 0) : null;
        per.push({ q, f1: tokenF1(answer, q.answer), kl, hit, tokens, ms });
      }
      const entries = built.caches.reduce((n, c) => n + c.entries, 0) / built.caches.length;
      const fullEntries = fullCache.entries;
      const categories = [...new Set(per.map((p) => p.q.category)), "all"];
      const decodeTokens = per.reduce((n, p) => n + p.tokens, 0);
      for (const category of categories) {
        const sel = category === "all" ? per : per.filter((p) => p.q.category === category);
        const mean = (f: (p: (typeof per)[number]) => number) => (sel.length ? sel.reduce((n, p) => n + f(p), 0) / sel.length : 0);
        const row: ResultRow = {
          method: job.method, budget: job.budget, conversation: job.conversation, category, questions: sel.length,
          f1: mean((p) => p.f1), kl: mean((p) => p.kl),
          routingHit: job.method.startsWith("epicache") ? mean((p) => p.hit ?? 0) : null,
          entries, compression: fullEntries / entries, buildSeconds: built.seconds,
          decodeMsPerToken: decodeTokens ? per.reduce((n, p) => n + p.ms, 0) / decodeTokens : 0,
          peakRssBytes: process.resourceUsage().maxRSS * 1024,
        };
        rows.push(row);
        appendFileSync(resultsPath, `${JSON.stringify(row)}\n`);
      }
      finished++;
      hooks.log?.(`${label}: F1 ${(rows[rows.length - 1].f1 * 100).toFixed(1)}, KL ${rows[rows.length - 1].kl.toFixed(3)}, ${questions.length} questions`);
    }
  }
  return rows;
}

/**
 * Refuses to add results to `outDir` when its config.json records another configuration or other
 * weights. The model's name is not compared: configs written before models were named by id hold the
 * builder's path there, and the fingerprint says whether the weights are the same.
 */
function checkResumable(previousText: string, configText: string, ref: ModelRef, outDir: string): void {
  let previous: Record<string, unknown>;
  try {
    previous = JSON.parse(previousText) as Record<string, unknown>;
  } catch (e) {
    throw new EpicacheError("invalid_argument", `${outDir}/config.json: ${(e as Error).message}; use another --out`);
  }
  if (previous.fingerprint !== ref.fingerprint) {
    throw new EpicacheError("model_mismatch", `${outDir} holds results of model ${String(previous.model)} (fingerprint ${String(previous.fingerprint)}), not of ${ref.id} (fingerprint ${ref.fingerprint}): pass that model with --model, or use another --out`);
  }
  if (`${JSON.stringify({ ...previous, model: ref.id }, null, 1)}\n` !== configText) {
    throw new EpicacheError("invalid_argument", `${outDir} holds results of another configuration (config.json differs); use another --out`);
  }
}

interface BuiltJob {
  manifest: EpisodeManifest;
  caches: KvCache[];
  seconds: number;
}

/**
 * Builds a job's caches (or reuses a complete earlier build of the same job) and loads them. They go to
 * a filesystem episode store under `out/caches` (tenant "eval", the job as the version), stored as f32
 * so that differences between methods come from the cache alone, not from storage rounding.
 */
async function buildJob(model: ChatModel, embedder: OnnxEmbedder, conversation: Conversation, config: EvalConfig, job: Job, root: string, log?: (m: string) => void): Promise<BuiltJob> {
  const store = new EpisodeStore(new FsObjectStore(root));
  const at = { store, tenant: "eval", conversation: storeId(conversation.id), version: `${job.method}-${job.budget ?? "full"}`, dtype: "f32" as const };
  const recorded = join(root, `${at.conversation}.${at.version}.build-seconds`);
  const method = (job.method === "epicache-noalloc" ? "epicache" : job.method) as Method;
  if (!isMethod(method)) throw new EpicacheError("invalid_argument", `unknown method ${job.method}`);
  let manifest: EpisodeManifest;
  let seconds = 0;
  try {
    manifest = await store.readManifest(at.tenant, at.conversation, at.version);
    seconds = existsSync(recorded) ? Number(readFileSync(recorded, "utf8")) : 0;
  } catch (e) {
    if ((e as EpicacheError).code !== "store_not_found") throw e;
    const t0 = performance.now();
    ({ manifest } = await buildEpisodes(model, embedder, conversation, at, {
      method, budget: job.budget ?? 0, blockSize: config.block, episodes: config.episodes, seed: config.seed,
      maxContext: config.maxContext, alloc: job.method === "epicache-noalloc" ? false : undefined, log,
    }));
    seconds = (performance.now() - t0) / 1000;
    writeFileSync(recorded, `${seconds}\n`);
  }
  const caches: KvCache[] = [];
  for (const e of manifest.episodes) caches.push(await store.loadEpisode(manifest, e.id));
  return { manifest, caches, seconds };
}

/** A conversation id as a store id (LoCoMo's and REALTALK's ids already are). */
function storeId(id: string): string {
  const s = safe(id).replace(/^[^A-Za-z0-9]+/, "").replace(/\.\.+/g, ".").slice(0, 64);
  return isValidId(s) ? s : `c${createHash("sha256").update(id).digest("hex").slice(0, 16)}`;
}

function safe(id: string): string {
  return id.replace(/[^A-Za-z0-9._-]/g, "_");
}

/**
 * What the runner does, apart from HTTP: embed texts, run rebuild jobs (segment, embed, cluster,
 * build, upload, publish) one after another from a bounded queue, and answer questions from loaded
 * episode caches. All model work takes turns through {@link ModelSlots}; a rebuild pauses before every
 * model call so that questions go first.
 */
import { randomUUID } from "node:crypto";
import {
  DEFAULT_VOTE_K,
  EpicacheError,
  isEpicacheError,
  conversationFromMessages,
  manifestKey,
  signRequest,
  type BuildConfig,
  type JobRouting,
  type MedoidCount,
  type JobStatus,
  type RoutingRule,
  type RebuildRequest,
  type TranscriptMessage,
} from "@epicache/shared";
import type { OnnxEmbedder } from "../embedder";
import { buildEpisodes, EpisodeStore, LoadedEpisodes, manifestRouting, needsFull, questionPrompt, updateEpisodes, type EpisodeManifest } from "../episodes";
import { generate, type ChatModel } from "../model";
import { chatModelRef } from "../models";
import { chatFrame } from "../press";
import type { RunnerConfig } from "./config";
import { RunnerMetrics } from "./metrics";
import { ModelSlots } from "./model-slots";

export interface GenerateInput {
  tenant: string;
  conversation: string;
  version: string;
  episode: number;
  question: string;
  maxTokens: number;
  dateHint: boolean;
}

export interface GenerateOutput {
  answer: string;
  tokens: number;
  timings: { queuedMs: number; loadMs: number; generateMs: number };
}

interface Job {
  status: JobStatus;
  request: RebuildRequest;
  started: number;
}

/** Finished jobs kept for `GET /v1/jobs/{id}`. */
const FINISHED_JOBS_KEPT = 1000;

export class Runner {
  readonly slots: ModelSlots;
  readonly loaded: LoadedEpisodes;
  readonly metrics: RunnerMetrics;
  private readonly jobs = new Map<string, Job>();
  private readonly queue: string[] = [];
  private working = false;
  private readonly manifests = new Map<string, EpisodeManifest>(); // versions never change
  private idle: Promise<void> = Promise.resolve();

  constructor(
    readonly config: RunnerConfig,
    readonly model: ChatModel,
    readonly embedder: OnnxEmbedder,
    readonly store: EpisodeStore,
    private readonly log: (m: string) => void = () => undefined,
  ) {
    this.slots = new ModelSlots(config.concurrency);
    this.loaded = new LoadedEpisodes(store, config.cacheBytes);
    this.metrics = new RunnerMetrics({ queueDepth: () => this.queueDepth, cache: () => this.loaded.stats, cacheLimit: config.cacheBytes });
  }

  /** Jobs queued or running, plus model calls waiting for a turn. */
  get queueDepth(): number {
    return this.queue.length + (this.working ? 1 : 0) + this.slots.waiting;
  }

  async embed(texts: string[]): Promise<{ model: string; dimension: number; vectors: number[][] }> {
    const vectors = await this.slots.run("embed", () => this.embedder.embed(texts));
    return { model: this.embedder.modelId, dimension: this.embedder.dimension, vectors: vectors.map((v) => Array.from(v)) };
  }

  /** Queues a rebuild; `queue_full` when the queue is at its limit. */
  rebuild(request: RebuildRequest): JobStatus {
    if (this.queue.length + (this.working ? 1 : 0) >= this.config.queueLimit) {
      throw new EpicacheError("queue_full", `${this.config.queueLimit} rebuild jobs are queued or running; retry later`);
    }
    const id = randomUUID();
    const status: JobStatus = {
      id, tenant: request.tenant, conversation: request.conversation, version: request.version,
      status: "queued", stage: "queued", percent: 0, etaSeconds: null, createdAt: new Date().toISOString(), finishedAt: null, error: null, result: null,
    };
    this.jobs.set(id, { status, request, started: 0 });
    this.queue.push(id);
    this.forgetOldJobs();
    void this.work();
    return { ...status };
  }

  job(id: string): JobStatus {
    const job = this.jobs.get(id);
    if (job === undefined) throw new EpicacheError("not_found", `no job ${id} on this runner`);
    return { ...job.status };
  }

  /** Resolves when no job is queued or running (tests, shutdown). */
  async drain(): Promise<void> {
    while (this.working || this.queue.length > 0) await this.idle;
  }

  async generate(input: GenerateInput, onText?: (text: string) => void | Promise<void>): Promise<GenerateOutput> {
    const t0 = performance.now();
    const manifest = await this.manifest(input.tenant, input.conversation, input.version);
    if (input.episode >= manifest.episodes.length) {
      throw new EpicacheError("invalid_argument", `episode ${input.episode} is not in version ${input.version} (episodes 0 … ${manifest.episodes.length - 1})`);
    }
    this.checkModel(manifest);
    const base = await this.loaded.get(manifest, input.episode);
    const t1 = performance.now();
    return this.slots.run("generate", async () => {
      const t2 = performance.now();
      // The loaded cache is shared: the question and answer go into a copy.
      const cache = base.clone();
      const prompt = questionPrompt(chatFrame(this.model.tokenizer), input.question, { dateHint: input.dateHint });
      let answer = "";
      let tokens = 0;
      for await (const t of generate(this.model, prompt, { maxTokens: input.maxTokens, cache })) {
        answer += t.text;
        tokens++;
        await onText?.(t.text);
      }
      const generateMs = performance.now() - t2;
      this.metrics.tokens.inc(tokens);
      this.metrics.generateSeconds.inc(generateMs / 1000);
      if (tokens > 0) this.metrics.tokensPerSecond.set(tokens / (generateMs / 1000));
      return { answer: answer.trim(), tokens, timings: { queuedMs: t2 - t1, loadMs: t1 - t0, generateMs } };
    });
  }

  private async manifest(tenant: string, conversation: string, version: string): Promise<EpisodeManifest> {
    const key = manifestKey(tenant, conversation, version);
    const cached = this.manifests.get(key);
    if (cached !== undefined) return cached;
    const manifest = await this.store.readManifest(tenant, conversation, version);
    this.manifests.set(key, manifest);
    if (this.manifests.size > 10_000) this.manifests.delete(this.manifests.keys().next().value as string);
    return manifest;
  }

  /**
   * The version an update continues, when it can: it exists, ends at the message the sender says,
   * and was built as this request would build (method, budget, block, positions, whole history).
   */
  private async updateBase(tenant: string, conversation: string, base: NonNullable<RebuildRequest["base"]>, build: BuildConfig): Promise<EpisodeManifest> {
    let manifest: EpisodeManifest;
    try {
      manifest = await this.store.readManifest(tenant, conversation, base.version);
    } catch (e) {
      if (isEpicacheError(e) && e.code === "store_not_found") needsFull(`no version ${base.version} to update`);
      throw e;
    }
    if (manifest.update && manifest.update.lastTurnId !== base.lastMessageId) {
      needsFull(`version ${base.version} ends at message ${manifest.update.lastTurnId}, not ${base.lastMessageId}`);
    }
    const differs = [
      build.method !== undefined && build.method !== manifest.method ? "method" : null,
      build.budget !== undefined && manifest.budget !== null && build.budget !== manifest.budget ? "budget" : null,
      build.block !== undefined && build.block !== manifest.block ? "block" : null,
      (build.positions ?? "compact") !== (manifest.positions ?? "original") ? "positions" : null,
      build.maxContext !== undefined ? "a cut history (maxContext)" : null,
    ].filter((d): d is string => d !== null);
    if (differs.length > 0) needsFull(`version ${base.version} was built with another ${differs.join(", ")}`);
    return manifest;
  }

  private checkModel(manifest: EpisodeManifest): void {
    if (manifest.model.fingerprint !== this.model.fingerprint) {
      throw new EpicacheError("model_mismatch", `version ${manifest.version} was built with model ${manifest.model.id} (fingerprint ${manifest.model.fingerprint}); this runner serves ${chatModelRef(this.model).id} (fingerprint ${this.model.fingerprint})`);
    }
  }

  private async work(): Promise<void> {
    if (this.working) return;
    this.working = true;
    let done: () => void = () => undefined;
    this.idle = new Promise((r) => (done = r));
    try {
      for (let id = this.queue.shift(); id !== undefined; id = this.queue.shift()) {
        const job = this.jobs.get(id);
        if (job !== undefined) await this.runJob(job);
      }
    } finally {
      this.working = false;
      done();
    }
  }

  private async runJob(job: Job): Promise<void> {
    const { request, status } = job;
    job.started = performance.now();
    status.status = "running";
    let stage = "segment";
    let stageStarted = performance.now();
    const enter = (next: string) => {
      this.metrics.stageSeconds.observe({ stage }, (performance.now() - stageStarted) / 1000);
      stage = next;
      stageStarted = performance.now();
      status.stage = next;
    };
    status.stage = stage;
    try {
      type Optional = "maxContext" | "positions" | "nMedoid" | "alloc" | "routing" | "voteK";
      const build = { ...this.config.build, ...request.config } as Required<Omit<BuildConfig, Optional>> & Pick<BuildConfig, Optional>;
      let prefillStarted = 0;
      const target = { store: this.store, tenant: request.tenant, conversation: request.conversation, version: request.version, dtype: build.dtype };
      const report = request.base
        ? await this.slots.run("rebuild", async () => {
          const base = await this.updateBase(request.tenant, request.conversation, request.base as NonNullable<RebuildRequest["base"]>, build);
          enter("prefill");
          return updateEpisodes(this.model, this.embedder, base, request.messages, target, { log: this.log, pause: () => this.slots.pause("rebuild") });
        })
        : await this.slots.run("rebuild", () => {
          // Typed messages straight to a conversation, by the transcript rules (errors name messages[i]).
          const { conversation, cursor } = conversationFromMessages(request.conversation, request.messages);
          return buildEpisodes(this.model, this.embedder, conversation, target, {
            method: build.method, episodes: build.episodes, budget: build.budget, blockSize: build.block, maxContext: build.maxContext,
            positions: build.positions, nMedoid: build.nMedoid as MedoidCount | undefined, alloc: build.alloc, routing: routingOf(build),
            cursor,
            log: this.log,
            pause: () => this.slots.pause("rebuild"),
            onStage: (next) => {
              enter(next);
              if (next === "prefill" && prefillStarted === 0) prefillStarted = performance.now();
            },
            onProgress: ({ episode, episodes, block, blocks }) => {
              // Prefill is nearly all of a build: 5 % before it, 95 % through it.
              const done = (episode * blocks + block) / (episodes * blocks);
              status.percent = Math.round(5 + 90 * done);
              const elapsed = (performance.now() - prefillStarted) / 1000;
              status.etaSeconds = done > 0 ? Math.round((elapsed * (1 - done)) / done) : null;
            },
          });
        });
      enter("done");
      const m = report.manifest;
      status.result = {
        version: m.version, active: report.published?.active ?? m.version, manifestKey: manifestKey(m.tenant, m.conversation, m.version),
        contextTokens: m.contextTokens, episodes: m.episodes.map((e) => ({ id: e.id, centroid: e.centroid, bytes: e.bytes })), embedder: m.embedder,
        routing: jobRouting(m),
        kind: m.update?.kind ?? "full", reason: m.update?.reason ?? "full build", baseVersion: m.update?.baseVersion ?? null,
        ...(m.update ? { lastMessageId: m.update.lastTurnId } : {}),
      };
      status.status = "succeeded";
      this.metrics.jobs.inc({ status: "succeeded" });
      // Superseded versions go once the grace period has passed (readers may still hold them).
      await this.store.gc(request.tenant, request.conversation, { graceMs: this.config.gcGraceSeconds * 1000 }).catch((e: Error) => this.log(`gc of ${request.tenant}/${request.conversation}: ${e.message}`));
    } catch (e) {
      status.status = "failed";
      status.error = isEpicacheError(e) ? { code: e.code, message: e.message } : { code: "internal", message: (e as Error)?.message ?? String(e) };
      this.metrics.jobs.inc({ status: "failed" });
      this.log(`rebuild ${status.id} of ${request.tenant}/${request.conversation} failed: ${status.error.message}`);
    } finally {
      status.percent = status.status === "succeeded" ? 100 : status.percent;
      status.etaSeconds = status.status === "succeeded" ? 0 : null;
      status.finishedAt = new Date().toISOString();
    }
    if (request.callbackUrl !== undefined) await this.callback(request.callbackUrl, status);
  }

  /** Posts the finished job to the edge, signed; three tries. */
  private async callback(url: string, status: JobStatus): Promise<void> {
    const body = JSON.stringify(status);
    const path = new URL(url);
    for (let attempt = 1; attempt <= 3; attempt++) {
      try {
        const headers = await signRequest(this.config.secret, { method: "POST", path: path.pathname + path.search, timestamp: Math.floor(Date.now() / 1000), requestId: randomUUID(), body });
        const res = await fetch(url, { method: "POST", headers: { ...headers, "content-type": "application/json" }, body, signal: AbortSignal.timeout(10_000) });
        if (res.ok) return;
        this.log(`callback ${url} answered ${res.status} (try ${attempt})`);
        if (res.status < 500) return;
      } catch (e) {
        this.log(`callback ${url} failed (try ${attempt}): ${(e as Error).message}`);
      }
      await new Promise((r) => setTimeout(r, 500 * attempt));
    }
  }

  private forgetOldJobs(): void {
    const finished = [...this.jobs.values()].filter((j) => j.status.finishedAt !== null);
    for (const j of finished.slice(0, Math.max(0, finished.length - FINISHED_JOBS_KEPT))) this.jobs.delete(j.status.id);
  }
}

/** The routing rule a build config asks for; undefined for the build's default. */
function routingOf(build: Pick<BuildConfig, "routing" | "voteK">): RoutingRule | undefined {
  if (build.routing === undefined) return undefined;
  return build.routing === "vote" ? { rule: "vote", k: build.voteK ?? DEFAULT_VOTE_K } : { rule: build.routing };
}

/**
 * What the edge needs to route by the manifest's rule: for window, vote and lexical, the window
 * vectors and each window's episode; for lexical, each window's terms.
 */
function jobRouting(m: EpisodeManifest): JobRouting {
  const routing = m.routing;
  if (routing.rule === "centroid") return { rule: "centroid" };
  const windowEpisodes = (manifestRouting(m).data.windowEpisodes ?? []).slice();
  const { windowVectors } = routing;
  if (routing.rule === "lexical") return { rule: "lexical", windowVectors, windowEpisodes, windowTerms: routing.windowTerms };
  return routing.rule === "vote" ? { rule: "vote", k: routing.k, windowVectors, windowEpisodes } : { rule: "window", windowVectors, windowEpisodes };
}

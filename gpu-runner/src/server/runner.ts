/**
 * What the runner does, apart from HTTP: embed texts, run rebuild jobs one after another from a
 * bounded queue (rebuild-job.ts), and answer questions from loaded episode caches (answers.ts). All
 * model work takes turns through {@link ModelSlots}; a rebuild pauses before every model call so that
 * questions go first.
 */
import { randomUUID } from "node:crypto";
import type { JobStatus, RebuildRequest } from "@epicache/shared";
import type { OnnxEmbedder } from "../embedder";
import { EpisodeStore, LoadedEpisodes } from "../episodes";
import type { ChatModel } from "../runtime";
import { Answers, type GenerateInput, type GenerateOutput } from "./answers";
import type { RunnerConfig } from "./config";
import { JobQueue, JobStore } from "./job-queue";
import { RunnerMetrics } from "./metrics";
import { ModelSlots } from "./model-slots";
import { runRebuild } from "./rebuild-job";

export type { GenerateInput, GenerateOutput } from "./answers";

export class Runner {
  readonly slots: ModelSlots;
  readonly loaded: LoadedEpisodes;
  readonly metrics: RunnerMetrics;
  private readonly jobs = new JobStore();
  private readonly queue: JobQueue;
  private readonly answers: Answers;

  constructor(
    readonly config: RunnerConfig,
    readonly model: ChatModel,
    readonly embedder: OnnxEmbedder,
    readonly store: EpisodeStore,
    log: (m: string) => void = () => undefined,
  ) {
    this.slots = new ModelSlots(config.concurrency);
    this.loaded = new LoadedEpisodes(store, config.cacheBytes);
    this.metrics = new RunnerMetrics({
      queueDepth: () => this.queueDepth,
      cache: () => this.loaded.stats,
      cacheLimit: config.cacheBytes,
    });
    this.answers = new Answers(model, store, this.loaded, this.slots, this.metrics);
    this.queue = new JobQueue(config.queueLimit, (job) =>
      runRebuild(
        { config, model, embedder, store, slots: this.slots, metrics: this.metrics, log },
        job,
      ),
    );
  }

  /** Jobs queued or running, plus model calls waiting for a turn. */
  get queueDepth(): number {
    return this.queue.depth + this.slots.waiting;
  }

  async embed(texts: string[]): Promise<{ model: string; dimension: number; vectors: number[][] }> {
    const vectors = await this.slots.run("embed", () => this.embedder.embed(texts));
    return {
      model: this.embedder.modelId,
      dimension: this.embedder.dimension,
      vectors: vectors.map((v) => Array.from(v)),
    };
  }

  /** Queues a rebuild; `queue_full` when the queue is at its limit. */
  rebuild(request: RebuildRequest): JobStatus {
    const status: JobStatus = {
      id: randomUUID(),
      tenant: request.tenant,
      conversation: request.conversation,
      version: request.version,
      status: "queued",
      stage: "queued",
      percent: 0,
      etaSeconds: null,
      createdAt: new Date().toISOString(),
      finishedAt: null,
      error: null,
      result: null,
    };
    const job = { status, request };
    this.queue.push(job);
    this.jobs.add(job);
    return { ...status };
  }

  job(id: string): JobStatus {
    return this.jobs.status(id);
  }

  /** Resolves when no job is queued or running (tests, shutdown). */
  drain(): Promise<void> {
    return this.queue.drain();
  }

  generate(
    input: GenerateInput,
    onText?: (text: string) => void | Promise<void>,
  ): Promise<GenerateOutput> {
    return this.answers.generate(input, onText);
  }
}

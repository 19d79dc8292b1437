/** The runner's Prometheus metrics (`GET /metrics`), on a registry of its own. */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import type { LoadedStats } from "../episodes";

export class RunnerMetrics {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: "epicache_runner_http_requests_total",
    help: "HTTP requests by route, method and status.",
    labelNames: ["route", "method", "status"],
    registers: [this.registry],
  });
  readonly latency = new Histogram({
    name: "epicache_runner_http_request_duration_seconds",
    help: "HTTP request latency by route (to the last byte of a stream).",
    labelNames: ["route", "method"],
    buckets: [0.005, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });
  readonly stageSeconds = new Histogram({
    name: "epicache_runner_rebuild_stage_seconds",
    help: "Rebuild job time by stage.",
    labelNames: ["stage"],
    buckets: [0.05, 0.25, 1, 5, 15, 60, 180, 600, 1800],
    registers: [this.registry],
  });
  readonly jobs = new Counter({
    name: "epicache_runner_rebuild_jobs_total",
    help: "Finished rebuild jobs by outcome.",
    labelNames: ["status"],
    registers: [this.registry],
  });
  readonly tokens = new Counter({
    name: "epicache_runner_generated_tokens_total",
    help: "Tokens generated.",
    registers: [this.registry],
  });
  readonly generateSeconds = new Counter({
    name: "epicache_runner_generate_seconds_total",
    help: "Seconds spent generating (tokens_total / this = tokens per second).",
    registers: [this.registry],
  });
  readonly tokensPerSecond = new Gauge({
    name: "epicache_runner_tokens_per_second",
    help: "Decode speed of the last answer.",
    registers: [this.registry],
  });

  constructor(sources: { queueDepth: () => number; cache: () => LoadedStats; cacheLimit: number }) {
    collectDefaultMetrics({ register: this.registry, prefix: "epicache_runner_" });
    const reg = [this.registry];
    new Gauge({
      name: "epicache_runner_queue_depth",
      help: "Rebuild jobs queued or running, plus model calls waiting (scale on this).",
      registers: reg,
      collect() {
        this.set(sources.queueDepth());
      },
    });
    new Gauge({
      name: "epicache_runner_episode_cache_hits",
      help: "Episode-cache lookups served from memory (or a shared load).",
      registers: reg,
      collect() {
        this.set(sources.cache().hits);
      },
    });
    new Gauge({
      name: "epicache_runner_episode_cache_misses",
      help: "Episode-cache lookups that loaded from the store.",
      registers: reg,
      collect() {
        this.set(sources.cache().misses);
      },
    });
    new Gauge({
      name: "epicache_runner_episode_cache_evictions",
      help: "Episode caches evicted to stay within the byte limit.",
      registers: reg,
      collect() {
        this.set(sources.cache().evictions);
      },
    });
    new Gauge({
      name: "epicache_runner_episode_cache_bytes",
      help: "Bytes of loaded episode caches held.",
      registers: reg,
      collect() {
        this.set(sources.cache().bytes);
      },
    });
    new Gauge({
      name: "epicache_runner_episode_cache_limit_bytes",
      help: "The byte limit of loaded episode caches.",
      registers: reg,
      collect() {
        this.set(sources.cacheLimit);
      },
    });
  }
}

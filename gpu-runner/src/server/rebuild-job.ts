/**
 * One rebuild job: a full build from a transcript, or an update of a stored version with the
 * messages after it; its status as it goes (stage, percent, ETA), the result the edge stores, and
 * the signed completion callback.
 */
import { randomUUID } from "node:crypto";
import {
  conversationFromMessages,
  DEFAULT_ROUTING,
  DEFAULT_VOTE_K,
  describeError,
  httpStatusOf,
  isEpicacheError,
  manifestKey,
  PUBLIC_MESSAGES,
  REPRESENTATIVE_CHARS,
  signRequest,
  type BuildConfig,
  type ErrorCode,
  type JobRouting,
  type JobStatus,
  type MedoidCount,
  type RebuildRequest,
  type RoutingRule,
} from "@epicache/shared";
import type { OnnxEmbedder } from "../embedder";
import {
  buildEpisodes,
  EpisodeStore,
  manifestRouting,
  needsFull,
  updateEpisodes,
  type EpisodeManifest,
} from "../episodes";
import type { ChatModel } from "../runtime";
import type { RunnerConfig } from "./config";
import type { Job } from "./job-queue";
import type { RunnerMetrics } from "./metrics";
import type { ModelSlots } from "./model-slots";

export interface RebuildDeps {
  config: RunnerConfig;
  model: ChatModel;
  embedder: OnnxEmbedder;
  store: EpisodeStore;
  slots: ModelSlots;
  metrics: RunnerMetrics;
  log: (m: string) => void;
}

/** Runs `job` to the end (its status says how it ended), then posts it to the callback URL if any. */
export async function runRebuild(deps: RebuildDeps, job: Job): Promise<void> {
  const { config, model, embedder, store, slots, metrics, log } = deps;
  const { request, status } = job;
  status.status = "running";
  let stage = "segment";
  let stageStarted = performance.now();
  const enter = (next: string) => {
    metrics.stageSeconds.observe({ stage }, (performance.now() - stageStarted) / 1000);
    stage = next;
    stageStarted = performance.now();
    status.stage = next;
  };
  status.stage = stage;
  try {
    type Optional = "maxContext" | "positions" | "nMedoid" | "alloc" | "routing" | "voteK";
    const build = { ...config.build, ...request.config } as Required<Omit<BuildConfig, Optional>> &
      Pick<BuildConfig, Optional>;
    let prefillStarted = 0;
    const onProgress = ({
      episode,
      episodes,
      block,
      blocks,
    }: {
      episode: number;
      episodes: number;
      block: number;
      blocks: number;
    }) => {
      // Prefill is nearly all of a build or an update: 5 % before it, 95 % through it.
      const done = (episode * blocks + block) / (episodes * blocks);
      status.percent = Math.round(5 + 90 * done);
      const elapsed = (performance.now() - prefillStarted) / 1000;
      status.etaSeconds = done > 0 ? Math.round((elapsed * (1 - done)) / done) : null;
    };
    const target = {
      store,
      tenant: request.tenant,
      conversation: request.conversation,
      version: request.version,
      dtype: build.dtype,
    };
    const report = request.base
      ? await slots.run("rebuild", async () => {
          const base = await updateBase(
            store,
            request.tenant,
            request.conversation,
            request.base as NonNullable<RebuildRequest["base"]>,
            build,
          );
          enter("prefill");
          prefillStarted = performance.now();
          return updateEpisodes(model, embedder, base, request.messages, target, {
            log,
            pause: () => slots.pause("rebuild"),
            onProgress,
          });
        })
      : await slots.run("rebuild", () => {
          // Typed messages straight to a conversation, by the transcript rules (errors name messages[i]).
          const { conversation, cursor } = conversationFromMessages(
            request.conversation,
            request.messages,
          );
          return buildEpisodes(model, embedder, conversation, target, {
            method: build.method,
            episodes: build.episodes,
            budget: build.budget,
            blockSize: build.block,
            maxContext: build.maxContext,
            positions: build.positions,
            nMedoid: build.nMedoid as MedoidCount | undefined,
            alloc: build.alloc,
            routing: routingOf(build),
            cursor,
            log,
            pause: () => slots.pause("rebuild"),
            onStage: (next) => {
              enter(next);
              if (next === "prefill" && prefillStarted === 0) prefillStarted = performance.now();
            },
            onProgress,
          });
        });
    enter("done");
    const m = report.manifest;
    status.result = {
      version: m.version,
      active: report.published?.active ?? m.version,
      manifestKey: manifestKey(m.tenant, m.conversation, m.version),
      contextTokens: m.contextTokens,
      episodes: m.episodes.map((e, i) => ({
        id: e.id,
        centroid: e.centroid,
        bytes: e.bytes,
        entries: e.entries,
        ...(e.layerEntries ? { layerEntries: e.layerEntries } : {}),
        ...(m.update
          ? { representative: clipText(m.update.episodes[i].prompt, REPRESENTATIVE_CHARS) }
          : {}),
      })),
      embedder: m.embedder,
      routing: jobRouting(m),
      kind: m.update?.kind ?? "full",
      reason: m.update?.reason ?? "full build",
      baseVersion: m.update?.baseVersion ?? null,
      ...(m.update ? { lastMessageId: m.update.lastTurnId } : {}),
    };
    // Everything a poll reads changes together: a job seen succeeded is at 100 %, finished.
    Object.assign(status, {
      percent: 100,
      etaSeconds: 0,
      finishedAt: new Date().toISOString(),
      status: "succeeded",
    });
    metrics.jobs.inc({ status: "succeeded" });
    // Superseded versions go once the grace period has passed (readers may still hold them).
    await store
      .gc(request.tenant, request.conversation, { graceMs: config.gcGraceSeconds * 1000 })
      .catch((e: Error) => log(`gc of ${request.tenant}/${request.conversation}: ${e.message}`));
  } catch (e) {
    status.status = "failed";
    // As the HTTP answers: a 5xx code, or an exception (`internal`), says only the code's fixed
    // text in the job (which the edge and its callback read); the exception goes to the log.
    const code: ErrorCode = isEpicacheError(e) ? e.code : "internal";
    status.error = {
      code,
      message: httpStatusOf(code) < 500 ? (e as Error).message : PUBLIC_MESSAGES[code],
    };
    metrics.jobs.inc({ status: "failed" });
    log(
      JSON.stringify({
        level: "error",
        event: "rebuild_failed",
        job: status.id,
        tenant: request.tenant,
        conversation: request.conversation,
        version: request.version,
        code,
        error: describeError(e),
      }),
    );
  }
  if (status.finishedAt === null)
    Object.assign(status, { etaSeconds: null, finishedAt: new Date().toISOString() });
  if (request.callbackUrl !== undefined)
    await callback(config.secret, request.callbackUrl, status, log);
}

/**
 * The version an update continues, when it can: it exists, ends at the message the sender says,
 * and was built as this request would build (method, budget, block, positions, whole history).
 */
async function updateBase(
  store: EpisodeStore,
  tenant: string,
  conversation: string,
  base: NonNullable<RebuildRequest["base"]>,
  build: BuildConfig,
): Promise<EpisodeManifest> {
  let manifest: EpisodeManifest;
  try {
    manifest = await store.readManifest(tenant, conversation, base.version);
  } catch (e) {
    if (isEpicacheError(e) && e.code === "store_not_found")
      needsFull(`no version ${base.version} to update`);
    throw e;
  }
  if (manifest.update && manifest.update.lastTurnId !== base.lastMessageId) {
    needsFull(
      `version ${base.version} ends at message ${manifest.update.lastTurnId}, not ${base.lastMessageId}`,
    );
  }
  const differs = [
    build.method !== undefined && build.method !== manifest.method ? "method" : null,
    build.budget !== undefined && manifest.budget !== null && build.budget !== manifest.budget
      ? "budget"
      : null,
    build.block !== undefined && build.block !== manifest.block ? "block" : null,
    (build.positions ?? "compact") !== (manifest.positions ?? "original") ? "positions" : null,
    build.maxContext !== undefined ? "a cut history (maxContext)" : null,
    routingDiffers(routingOf(build), manifest) ? "routing rule" : null,
  ].filter((d): d is string => d !== null);
  if (differs.length > 0)
    needsFull(`version ${base.version} was built with another ${differs.join(", ")}`);
  return manifest;
}

/** Posts the finished job to the edge, signed; three tries. */
async function callback(
  secret: string,
  url: string,
  status: JobStatus,
  log: (m: string) => void,
): Promise<void> {
  const body = JSON.stringify(status);
  const path = new URL(url);
  for (let attempt = 1; attempt <= 3; attempt++) {
    try {
      const headers = await signRequest(secret, {
        method: "POST",
        path: path.pathname + path.search,
        timestamp: Math.floor(Date.now() / 1000),
        requestId: randomUUID(),
        body,
      });
      const res = await fetch(url, {
        method: "POST",
        headers: { ...headers, "content-type": "application/json" },
        body,
        signal: AbortSignal.timeout(10_000),
      });
      if (res.ok) return;
      log(`callback ${url} answered ${res.status} (try ${attempt})`);
      if (res.status < 500) return;
    } catch (e) {
      log(`callback ${url} failed (try ${attempt}): ${(e as Error).message}`);
    }
    await new Promise((r) => setTimeout(r, 500 * attempt));
  }
}

/** Whether a requested routing rule (undefined: the default) is not the one `m` routes by. */
function routingDiffers(asked: RoutingRule | undefined, m: EpisodeManifest): boolean {
  // A build of one episode records centroid whatever was asked: nothing to route between.
  if (m.episodes.length === 1) return false;
  const want = asked ?? DEFAULT_ROUTING;
  const have = m.routing;
  return (
    want.rule !== have.rule || (want.rule === "vote" && have.rule === "vote" && want.k !== have.k)
  );
}

/** The routing rule a build config asks for; undefined for the build's default. */
function routingOf(build: Pick<BuildConfig, "routing" | "voteK">): RoutingRule | undefined {
  if (build.routing === undefined) return undefined;
  return build.routing === "vote"
    ? { rule: "vote", k: build.voteK ?? DEFAULT_VOTE_K }
    : { rule: build.routing };
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
  if (routing.rule === "lexical")
    return { rule: "lexical", windowVectors, windowEpisodes, windowTerms: routing.windowTerms };
  return routing.rule === "vote"
    ? { rule: "vote", k: routing.k, windowVectors, windowEpisodes }
    : { rule: "window", windowVectors, windowEpisodes };
}

/** The first `max` UTF-16 units of `text`, never ending inside a surrogate pair. */
function clipText(text: string, max: number): string {
  if (text.length <= max) return text;
  const end = /[\uD800-\uDBFF]/.test(text[max - 1]) ? max - 1 : max;
  return text.slice(0, end);
}

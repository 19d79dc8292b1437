/**
 * Building a conversation's episode caches (docs/design.md §1, stages 1 and 2): segment the history into
 * windows, embed and cluster them into episodes, pick each episode's representative windows, then
 * prefill the whole history once per episode, block by block, keeping what that episode's patched
 * prompt attends to under sensitivity-aware layer budgets. Baseline methods build one cache.
 */
import {
  BUILD_METHOD_REGISTRY,
  cutToSessions,
  DEFAULT_ROUTING,
  encodeWindowVectors,
  EpicacheError,
  l2Normalize,
  lexicalTerms,
  renderContext,
  segmentWindows,
  type BuildMethod,
  type Conversation,
  type ConversationWindow,
  type KvcDtype,
  type MedoidCount,
  type RoutingRule,
  type SessionCursor,
} from "@epicache/shared";
import type { OnnxEmbedder } from "../embedder";
import { KvCache, repositioner, type ChatModel } from "../runtime";
import { chatModelRef } from "../model-registry";
import { allocateLayers, defaultAllocation, type AllocMode } from "../calibration";
import { blockPrefill, evictionFreeTokens, type Allocation, type PositionMode } from "../prefill";
import { chatFrame, policyFor } from "../press";
import { clusterEpisodes, representatives } from "./cluster";
import { clusteringCohesion } from "./drift";
import type { EpisodeStore, PublishResult } from "./episode-store";
import {
  MANIFEST_FORMAT,
  manifestRouting,
  type BuildRecord,
  type EpisodeManifest,
  type UpdateState,
  type ManifestRouting,
} from "./manifest";

/**
 * Representative windows per episode when a build does not say. The authors' scripts use 8. On
 * SmolLM2 the sweep on LoCoMo dev (README, "Layer budgets and patched prompts") found one window
 * closest to the full cache's own answers (KL along them 0.116, against 0.134 with 2 and 0.193 with
 * 8, both paired intervals above 0), and it keeps every block's scoring prompt short: a whole
 * conversation builds about 7× faster than with 8.
 */
export const DEFAULT_N_MEDOID: MedoidCount = 1;

/** Where a build goes: a new version of a conversation in an episode store. */
export interface BuildTarget {
  store: EpisodeStore;
  tenant: string;
  conversation: string;
  version: string;
  /** How K and V are stored; default f16. */
  dtype?: KvcDtype;
  /** Move the active pointer to the new version (default true). */
  publish?: boolean;
}

export interface BuildOptions {
  method: BuildMethod;
  /** Episodes for EpiCache (E). Default 4. */
  episodes?: number;
  /** Entries per KV head per layer on average (M). */
  budget: number;
  blockSize: number;
  /**
   * How the budget is spread over layers (calibration/sensitivity-profile.ts). Default: the model's
   * (`defaultAllocation`) for EpiCache, uniform for the baselines.
   */
  alloc?: AllocMode;
  /** Overrides the sharpness the allocation's profile chose. */
  sharpness?: number;
  /** Within a layer: head-wise top-k over all heads (default) or the same budget for every head. */
  headAllocation?: Allocation;
  /** Representative windows per episode: a count or a share of its windows ("25%"). Default DEFAULT_N_MEDOID. */
  nMedoid?: MedoidCount;
  /** Utterances per window. Default 4. */
  windowSize?: number;
  /**
   * How questions will be routed to the episodes (shared routeQuestion); default
   * {@link DEFAULT_ROUTING}. `window`, `vote` and `lexical` store every window's vector in the manifest
   * (int8), `lexical` also every window's terms.
   */
  routing?: RoutingRule;
  seed?: number;
  /** Keep whole sessions from the start within this many context tokens (default: the whole history). */
  maxContext?: number;
  /**
   * Where kept entries sit (prefill/positions.ts): "compact" (default) keeps every attention inside
   * the model's window whatever the history's length; "original" keeps their history positions.
   */
  positions?: PositionMode;
  log?: (msg: string) => void;
  /** Prefill progress: episode, block, blocks. */
  onProgress?: (p: { episode: number; episodes: number; block: number; blocks: number }) => void;
  /** Called as each stage starts: render, embed, cluster, calibrate, prefill, write, publish. */
  onStage?: (stage: string) => void;
  /**
   * History token indices where a block must start (besides every B tokens from there): a build whose
   * blocks break where an earlier build ended, as an update's do (update-episodes.ts).
   */
  breaks?: readonly number[];
  /**
   * The episodes' patched prompts' representative texts, held fixed instead of chosen from this
   * clustering (one cache per text): what an update keeps between full builds.
   */
  prompts?: readonly string[];
  /** Where the transcript's last session stands (conversationFromMessages), for updates to continue it. */
  cursor?: SessionCursor;
  /** Why a full build (recorded in the manifest's update state); default "full build". */
  reason?: string;
  /** Each episode's cache as built, before it is written (the evaluation reads what it kept). */
  onCache?: (episode: number, cache: KvCache) => void;
  /** Awaited before every model call of the prefill (see BlockPrefillOptions.pause). */
  pause?: () => Promise<void>;
}

export interface BuildReport {
  manifest: EpisodeManifest;
  /** The publish's outcome; null with `publish: false`. */
  published: PublishResult | null;
  /** Per layer, per episode: entries summed over heads. */
  entries: number[][];
  sessionsKept: number;
  sessionsTotal: number;
  /** The largest position any attention of the build used, and the model's trained window. */
  positions: { mode: PositionMode; max: number; window: number };
  seconds: Record<string, number>;
  peakRssBytes: number;
}

export async function buildEpisodes(
  model: ChatModel,
  embedder: OnnxEmbedder,
  conversation: Conversation,
  target: BuildTarget,
  opts: BuildOptions,
): Promise<BuildReport> {
  const seconds: Record<string, number> = {};
  let t = performance.now();
  const stage = (name: string, next?: string) => {
    const now = performance.now();
    seconds[name] = (seconds[name] ?? 0) + (now - t) / 1000;
    t = now;
    if (next !== undefined) opts.onStage?.(next);
  };
  const routing = opts.routing ?? DEFAULT_ROUTING;
  // Checked before the work, not when the manifest is written at the end of it.
  if (routing.rule === "vote" && !(Number.isInteger(routing.k) && routing.k >= 1))
    throw new EpicacheError(
      "invalid_argument",
      `vote routing needs a positive integer k, got ${routing.k}`,
    );
  opts.onStage?.("render");
  const { config, tokenizer } = model;
  const frame = chatFrame(tokenizer);
  const kept = opts.maxContext
    ? cutToSessions(
        conversation,
        opts.maxContext - frame.open.length,
        (text) => tokenizer.encode(text).length,
      )
    : conversation;
  if (kept.sessions.length === 0)
    throw new EpicacheError(
      "invalid_argument",
      `not even the first session fits in ${opts.maxContext} context tokens`,
    );
  const context = [...frame.open, ...frame.history(renderContext(kept))];
  stage("render", "embed");

  // ── stage 1: episodes ──
  const windows = segmentWindows(kept, opts.windowSize ?? 4);
  const vectors = await embedder.embed(windows.map((w) => w.text));
  stage("embed", "cluster");
  const method = BUILD_METHOD_REGISTRY[opts.method];
  let groups: Array<{ centroid: Float32Array; windows: number[]; representatives: number[] }>;
  if (method.episodic) {
    const clusters = clusterEpisodes(vectors, opts.prompts?.length ?? opts.episodes ?? 4, {
      seed: opts.seed ?? 42,
    });
    if (clusters.clamped) opts.log?.(clusters.clamped.message);
    const reps = representatives(
      vectors,
      clusters.assignments,
      clusters.centroids,
      opts.nMedoid ?? DEFAULT_N_MEDOID,
    );
    groups = clusters.centroids.map((centroid, e) => ({
      centroid,
      windows: clusters.assignments.flatMap((a, i) => (a === e ? [i] : [])),
      representatives: reps[e],
    }));
  } else {
    // One cache for the whole conversation: its centroid is the mean direction of all windows.
    const mean = new Float32Array(embedder.dimension);
    for (const v of vectors) for (let i = 0; i < mean.length; i++) mean[i] += v[i];
    groups = [
      { centroid: l2Normalize(mean), windows: windows.map((_, i) => i), representatives: [] },
    ];
  }
  stage("cluster", "calibrate");

  // ── layer budgets ──
  let budgets: number[] | null = null;
  if (method.budgeted) {
    const alloc = opts.alloc ?? (method.alloc ? defaultAllocation(model) : "uniform");
    budgets = await allocateLayers(model, alloc, opts.budget, {
      sharpness: opts.sharpness,
      log: opts.log,
    });
  }
  stage("calibrate", "prefill");

  // ── stage 2: one cache per episode, each written as soon as it is built ──
  const dtype = target.dtype ?? "f16";
  const budget = method.budgeted ? opts.budget : null;
  const entries: number[][] = Array.from({ length: config.numLayers }, () => []);
  const episodes: EpisodeManifest["episodes"] = [];
  const mode = opts.positions ?? "compact";
  const window = config.contextLength;
  const compact =
    mode === "compact"
      ? { window, mover: repositioner(config, { f16: model.numerics === "ggml" }) }
      : undefined;
  let maxPosition = 0;
  const prompts = groups.map(
    (g, e) => opts.prompts?.[e] ?? g.representatives.map((i) => windows[i].text).join("\n"),
  );
  const segments = segmentsOf(context.length, opts.breaks ?? []);
  // Prefills segment [from, to) into episode e's cache from its block `done` (those before it are in
  // the cache) up to block `until`.
  const B = opts.blockSize;
  const prefill = async (
    e: number,
    cache: KvCache,
    [from, to]: [number, number],
    done: number,
    until = Math.ceil((to - from) / B),
  ) => {
    const prefilled = await blockPrefill(
      model.decoder,
      cache,
      context.slice(from + done * B, Math.min(to, from + until * B)),
      {
        blockSize: B,
        budgets,
        policy: policyFor(opts.method, frame, prompts[e]),
        allocation: opts.headAllocation,
        compact,
        onBlock: ({ block }) =>
          opts.onProgress?.({
            episode: e,
            episodes: groups.length,
            block: done + block,
            blocks: Math.ceil((to - from) / B),
          }),
        pause: opts.pause,
      },
    );
    maxPosition = Math.max(maxPosition, prefilled.maxPosition);
  };
  // The first blocks evict nothing and run no scoring prompt (evictionFreeTokens): every episode's
  // cache is the same there, so they are prefilled once and each episode goes on from a copy.
  const [first, end] = segments[0];
  const sharedBlocks =
    budgets && groups.length > 1 ? evictionFreeTokens(end - first, B, budgets) / B : 0;
  const shared = new KvCache(config);
  if (sharedBlocks > 0) await prefill(0, shared, segments[0], 0, sharedBlocks);
  for (let e = 0; e < groups.length; e++) {
    const group = groups[e];
    const cache = e + 1 < groups.length ? shared.clone() : shared;
    for (const [s, segment] of segments.entries()) {
      const done = s === 0 ? sharedBlocks : 0;
      const blocks = Math.ceil((segment[1] - segment[0]) / B);
      if (done > 0 && e > 0)
        opts.onProgress?.({ episode: e, episodes: groups.length, block: done, blocks });
      if (done < blocks) await prefill(e, cache, segment, done);
    }
    opts.onCache?.(e, cache);
    stage("prefill", "write");
    const stored = await target.store.writeEpisode(target, e, cache, {
      fingerprint: model.fingerprint,
      budget,
      dtype,
    });
    const layerEntries = cache.layerEntries;
    layerEntries.forEach((n, l) => entries[l].push(n));
    episodes.push({
      id: e,
      ...stored,
      centroid: Array.from(group.centroid),
      windows: group.windows,
      representatives: group.representatives,
      entries: cache.entries,
      layerEntries,
    });
    stage("write", e + 1 < groups.length ? "prefill" : "publish");
  }
  const manifest: EpisodeManifest = {
    format: MANIFEST_FORMAT,
    routing: manifestRoutingOf(routing, groups.length, windows, vectors),
    tenant: target.tenant,
    conversation: target.conversation,
    version: target.version,
    model: {
      ...chatModelRef(model),
      numerics: model.numerics,
      layers: config.numLayers,
      kvHeads: config.numKvHeads,
      headDim: config.headDim,
    },
    embedder: { modelId: embedder.modelId, dimension: embedder.dimension },
    method: opts.method,
    budget,
    block: opts.blockSize,
    layerBudgets: budgets,
    positions: mode,
    build: buildRecord(opts),
    contextTokens: context.length,
    dtype,
    episodes,
    update: updateState(kept, windows, vectors, groups, prompts, opts.cursor, opts.reason),
    createdAt: new Date().toISOString(),
  };
  // The manifest and the pointer go last: a manifest never names a missing cache.
  const published = target.publish === false ? null : await target.store.publish(manifest);
  stage("publish");
  return {
    manifest,
    published,
    entries,
    sessionsKept: kept.sessions.length,
    sessionsTotal: conversation.sessions.length,
    positions: { mode, max: maxPosition, window },
    seconds,
    peakRssBytes: process.resourceUsage().maxRSS * 1024,
  };
}

/** [from, to) spans of a history of `length` tokens, split at `breaks`. */
export function segmentsOf(length: number, breaks: readonly number[]): Array<[number, number]> {
  const cuts = [...new Set(breaks.filter((b) => b > 0 && b < length))].sort((a, b) => a - b);
  return [0, ...cuts].map((from, i) => [from, cuts[i] ?? length]);
}

/** What a full build leaves for updates: the history's end, its last unfinished window, the episodes' running means and prompts. */
function updateState(
  conversation: Conversation,
  windows: readonly ConversationWindow[],
  vectors: readonly Float32Array[],
  groups: ReadonlyArray<{ centroid: Float32Array; windows: number[] }>,
  prompts: readonly string[],
  cursor?: SessionCursor,
  reason = "full build",
): UpdateState {
  const turns = conversation.sessions.flatMap((s) => s.turns);
  const lastSession = conversation.sessions[conversation.sessions.length - 1];
  const last = windows[windows.length - 1];
  const size = Math.max(...windows.map((w) => w.turnIds.length));
  const episodes = groups.map((g, e) => {
    const sum = new Array<number>(vectors[0]?.length ?? 0).fill(0);
    for (const w of g.windows) vectors[w].forEach((x, d) => (sum[d] += x));
    return { sum, count: g.windows.length, prompt: prompts[e] };
  });
  return {
    kind: "full",
    reason,
    baseVersion: null,
    lastTurnId: turns[turns.length - 1].id,
    cursor: cursor ?? { index: lastSession.index, turns: lastSession.turns.length },
    speakers: [...conversation.speakers],
    turns: turns.length,
    turnsAtClustering: turns.length,
    tail:
      last && last.turnIds.length < size
        ? {
            index: last.index,
            lines: last.text.split("\n"),
            vector: Array.from(vectors[last.index]),
          }
        : null,
    episodes,
    cohesion: clusteringCohesion(vectors, groups),
  };
}

/** What the manifest records of `rule`: with one episode there is nothing to choose, so `centroid`. */
function manifestRoutingOf(
  rule: RoutingRule,
  episodes: number,
  windows: readonly ConversationWindow[],
  vectors: readonly Float32Array[],
): ManifestRouting {
  if (episodes === 1 || rule.rule === "centroid") return { rule: "centroid" };
  const windowVectors = encodeWindowVectors(vectors);
  if (rule.rule === "lexical")
    return {
      rule: "lexical",
      windowVectors,
      windowTerms: windows.map((w) => lexicalTerms(w.text).join(" ")),
    };
  return rule.rule === "vote"
    ? { rule: "vote", k: rule.k, windowVectors }
    : { rule: "window", windowVectors };
}

/** The options a manifest records beside its other fields (EpisodeManifest.build): those given. */
function buildRecord(opts: BuildOptions): BuildRecord {
  const { nMedoid, alloc, sharpness, headAllocation, windowSize, seed, maxContext } = opts;
  const record: BuildRecord = {
    nMedoid,
    alloc,
    sharpness,
    headAllocation,
    windowSize,
    seed,
    maxContext,
  };
  return Object.fromEntries(
    Object.entries(record).filter(([, v]) => v !== undefined),
  ) as BuildRecord;
}

/**
 * The options that build `manifest`'s history again as it was built: its method, budget, blocks,
 * episodes, positions and routing rule, the options it recorded (EpisodeManifest.build), and `extra`
 * (logging, progress, a reason). A manifest from before position modes gets compact positions, the
 * default: its original ones could pass the model's window.
 *
 * @example
 * ```ts
 * await buildEpisodes(model, embedder, conversation, target, rebuildOptions(base, { reason: "requested", log }));
 * ```
 */
export function rebuildOptions(
  manifest: EpisodeManifest,
  extra: Partial<BuildOptions> = {},
): BuildOptions {
  return {
    method: manifest.method as BuildMethod,
    budget: manifest.budget ?? 0,
    blockSize: manifest.block,
    episodes: manifest.episodes.length,
    positions: manifest.positions ?? "compact",
    routing: manifestRouting(manifest).rule,
    ...manifest.build,
    ...extra,
  };
}

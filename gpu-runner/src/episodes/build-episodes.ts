/**
 * Building a conversation's episode caches (DESIGN.md §1, stages 1 and 2): segment the history into
 * windows, embed and cluster them into episodes, pick each episode's representative windows, then
 * prefill the whole history once per episode, block by block, keeping what that episode's patched
 * prompt attends to under sensitivity-aware layer budgets. Baseline methods build one cache.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { cutToSessions, EpicacheError, l2Normalize, renderContext, segmentWindows, type Conversation } from "@epicache/shared";
import type { OnnxEmbedder } from "../embedder";
import { KvCache, type ChatModel } from "../model";
import { blockPrefill, layerBudgets, type Allocation } from "../prefill";
import { chatFrame, policyFor, type Method } from "../press";
import { profileFor } from "./calibration";
import { clusterEpisodes, representatives } from "./cluster";
import { encodeCache, episodeFile, MANIFEST, writeAtomic, type EpisodeManifest } from "./episode-dir";

export interface BuildOptions {
  method: Method;
  /** Episodes for EpiCache (E). Default 4. */
  episodes?: number;
  /** Entries per KV head per layer on average (M). */
  budget: number;
  blockSize: number;
  /** Layer allocation's sharpness; default 2. */
  alpha?: number;
  /** Sensitivity-aware layer budgets (default on for EpiCache, off for the baselines). */
  alloc?: boolean;
  /** Within a layer: head-wise top-k over all heads (default) or the same budget for every head. */
  headAllocation?: Allocation;
  /** Representative windows per episode. Default 1 (the paper's). */
  nMedoid?: number;
  /** Utterances per window. Default 4. */
  windowSize?: number;
  seed?: number;
  /** Keep whole sessions from the start within this many context tokens. */
  maxContext?: number;
  log?: (msg: string) => void;
  /** Prefill progress: episode, block, blocks. */
  onProgress?: (p: { episode: number; episodes: number; block: number; blocks: number }) => void;
}

export interface BuildReport {
  manifest: EpisodeManifest;
  /** Per layer, per episode: entries summed over heads. */
  entries: number[][];
  sessionsKept: number;
  sessionsTotal: number;
  seconds: Record<string, number>;
  peakRssBytes: number;
}

export async function buildEpisodes(model: ChatModel, embedder: OnnxEmbedder, conversation: Conversation, outDir: string, opts: BuildOptions): Promise<BuildReport> {
  const seconds: Record<string, number> = {};
  let t = performance.now();
  const stage = (name: string) => {
    const now = performance.now();
    seconds[name] = (seconds[name] ?? 0) + (now - t) / 1000;
    t = now;
  };
  const { config, tokenizer } = model;
  const frame = chatFrame(tokenizer);
  const kept = opts.maxContext
    ? cutToSessions(conversation, opts.maxContext - frame.open.length, (text) => tokenizer.encode(text).length)
    : conversation;
  if (kept.sessions.length === 0) throw new EpicacheError("invalid_argument", `not even the first session fits in ${opts.maxContext} context tokens`);
  const context = [...frame.open, ...frame.text(renderContext(kept))];
  stage("render");

  // ── stage 1: episodes ──
  const windows = segmentWindows(kept, opts.windowSize ?? 4);
  const vectors = await embedder.embed(windows.map((w) => w.text));
  stage("embed");
  const episodic = opts.method === "epicache";
  let groups: Array<{ centroid: Float32Array; windows: number[]; representatives: number[] }>;
  if (episodic) {
    const clusters = clusterEpisodes(vectors, opts.episodes ?? 4, { seed: opts.seed ?? 42 });
    if (clusters.clamped) opts.log?.(clusters.clamped.message);
    const reps = representatives(vectors, clusters.assignments, clusters.centroids, opts.nMedoid ?? 1);
    groups = clusters.centroids.map((centroid, e) => ({
      centroid,
      windows: clusters.assignments.flatMap((a, i) => (a === e ? [i] : [])),
      representatives: reps[e],
    }));
  } else {
    // One cache for the whole conversation: its centroid is the mean direction of all windows.
    const mean = new Float32Array(embedder.dimension);
    for (const v of vectors) for (let i = 0; i < mean.length; i++) mean[i] += v[i];
    groups = [{ centroid: l2Normalize(mean), windows: windows.map((_, i) => i), representatives: [] }];
  }
  stage("cluster");

  // ── layer budgets ──
  let budgets: number[] | null = null;
  if (opts.method !== "full") {
    const alloc = opts.alloc ?? episodic;
    budgets = alloc
      ? layerBudgets((await profileFor(model, opts.log)).sensitivity, opts.budget, { alpha: opts.alpha ?? 2 })
      : Array(config.numLayers).fill(opts.budget);
  }
  stage("calibrate");

  // ── stage 2: one cache per episode ──
  mkdirSync(outDir, { recursive: true });
  const entries: number[][] = Array.from({ length: config.numLayers }, () => []);
  const episodes: EpisodeManifest["episodes"] = [];
  for (let e = 0; e < groups.length; e++) {
    const group = groups[e];
    const repText = group.representatives.map((i) => windows[i].text).join("\n");
    const cache = new KvCache(config);
    await blockPrefill(model.decoder, cache, context, {
      blockSize: opts.blockSize, budgets, policy: policyFor(opts.method, frame, repText), allocation: opts.headAllocation,
      onBlock: ({ block, blocks }) => opts.onProgress?.({ episode: e, episodes: groups.length, block, blocks }),
    });
    stage("prefill");
    writeAtomic(join(outDir, episodeFile(e)), encodeCache(cache));
    cache.layers.forEach((layer, l) => entries[l].push(layer.lengths.reduce((a, b) => a + b, 0)));
    episodes.push({
      id: e, file: episodeFile(e), centroid: Array.from(group.centroid), windows: group.windows,
      representatives: group.representatives, entries: cache.entries,
    });
    stage("write");
  }
  const manifest: EpisodeManifest = {
    format: "epicache-episodes/1",
    conversation: kept.id,
    model: { path: model.path, fingerprint: model.fingerprint, numerics: model.numerics, layers: config.numLayers, kvHeads: config.numKvHeads, headDim: config.headDim },
    embedder: { modelId: embedder.modelId, dimension: embedder.dimension },
    method: opts.method, budget: opts.method === "full" ? null : opts.budget, block: opts.blockSize, layerBudgets: budgets,
    contextTokens: context.length, episodes, createdAt: new Date().toISOString(),
  };
  // The manifest goes last: a directory with a manifest has every cache it names.
  writeAtomic(join(outDir, MANIFEST), `${JSON.stringify(manifest, null, 1)}\n`);
  stage("write");
  return {
    manifest, entries, sessionsKept: kept.sessions.length, sessionsTotal: conversation.sessions.length,
    seconds, peakRssBytes: process.resourceUsage().maxRSS * 1024,
  };
}

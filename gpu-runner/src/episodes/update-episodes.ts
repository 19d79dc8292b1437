/**
 * Updating a conversation's episode caches with the messages after a stored version, instead of
 * building them again from the whole transcript. The new messages continue the history: their text
 * is rendered as the longer history's would be (renderContinuation), encoded line by line (so the
 * tokens add up), and block-wise prefill goes on over each episode's stored cache with that episode's
 * patched prompt, which stays fixed until the next full build. New windows (the base's unfinished
 * last window completed first) are embedded and join the nearest episode, whose centroid is a
 * running mean. Positions follow the build's rule, so no attention passes the model's window.
 *
 * With the clustering held fixed, a build of the first part followed by an update with the rest
 * gives the caches of one build of the whole whose blocks break where the first part ended
 * (update-episodes.test.ts), up to the rounding of the stored caches' dtype.
 *
 * An update is refused with `base_unusable` (and the reason) when only a full build is right: the
 * base predates updates or was built otherwise, a new speaker changes the context's header, the new
 * windows sit far from every episode, or the history has grown past `regrowth` times its size at the
 * last clustering.
 */
import {
  EpicacheError,
  l2Normalize,
  lexicalTerms,
  renderContinuation,
  conversationFromMessages,
  formatTurnLine,
  encodeWindowVectors,
  decodeWindowVectors,
  type Conversation,
  type Message,
  type SessionCursor,
} from "@epicache/shared";
import type { OnnxEmbedder } from "../embedder";
import { repositioner, type ChatModel } from "../runtime";
import { blockPrefill } from "../prefill";
import { chatFrame, policyFor } from "../press";
import type { BuildTarget } from "./build-episodes";
import type { EpisodeStore, PublishResult } from "./episode-store";
import { joinNearest } from "./drift";
import {
  MANIFEST_FORMAT,
  type EpisodeManifest,
  type ManifestRouting,
  type UpdateState,
} from "./manifest";

/**
 * The drift refusal's default share, from `npm run bench:drift` (bench/results/drift.json: 228 updates,
 * LoCoMo dev and REALTALK): at 0.7 a conversation's own next session is refused 4.4 % of the time and
 * a session of another chat caught 55 %; at 0.8, 13.6 % and 75 %. A refusal costs a full build, and
 * growth past 2× rebuilds anyway, so the cheaper side wins.
 */
export const DRIFT_THRESHOLD = 0.7;

/** When an update starts over (see the module comment). */
export interface UpdatePolicy {
  /** A full build once the history has grown this many times its size at the last clustering. Default 2. */
  regrowth?: number;
  /**
   * A full build when the new windows' mean cosine to their episode falls below this share of the
   * history's at the last clustering (drift.ts). Default {@link DRIFT_THRESHOLD}.
   */
  cohesion?: number;
}

export interface UpdateReport {
  manifest: EpisodeManifest;
  published: PublishResult | null;
  newTurns: number;
  /** Tokens appended to every episode's cache. */
  newTokens: number;
  positions: { max: number; window: number };
  seconds: Record<string, number>;
}

/** Why an update must be a full build instead; thrown as `base_unusable`. */
export function needsFull(reason: string): never {
  throw new EpicacheError("base_unusable", reason);
}

type UpdateOptions = UpdatePolicy & {
  log?: (m: string) => void;
  pause?: () => Promise<void>;
  /** After each block of each episode's prefill, as buildEpisodes reports it. */
  onProgress?: (p: { episode: number; episodes: number; block: number; blocks: number }) => void;
};

/** Updates `base` with transcript messages (the runner's path): they continue its last session unless their `session` says otherwise. */
export async function updateEpisodes(
  model: ChatModel,
  embedder: OnnxEmbedder,
  base: EpisodeManifest,
  messages: readonly Message[],
  target: BuildTarget & { store: EpisodeStore },
  opts: UpdateOptions = {},
): Promise<UpdateReport> {
  if (!base.update) needsFull(`version ${base.version} was built before updates existed`);
  if (messages.length === 0)
    throw new EpicacheError("invalid_argument", "an update needs at least one new message");
  const { conversation, cursor } = conversationFromMessages(base.conversation, messages, {
    after: base.update.cursor,
  });
  return continueEpisodes(model, embedder, base, conversation, cursor, target, opts);
}

/**
 * Updates `base` with `delta`, the sessions after its history (the first one its last session going
 * on when it has the same number), leaving the transcript at `cursor`.
 */
export async function continueEpisodes(
  model: ChatModel,
  embedder: OnnxEmbedder,
  base: EpisodeManifest,
  delta: Conversation,
  cursor: SessionCursor,
  target: BuildTarget & { store: EpisodeStore },
  opts: UpdateOptions = {},
): Promise<UpdateReport> {
  const seconds: Record<string, number> = {};
  let t = performance.now();
  const stage = (name: string) => {
    const now = performance.now();
    seconds[name] = (now - t) / 1000;
    t = now;
  };
  const state = base.update;
  if (!state) needsFull(`version ${base.version} was built before updates existed`);
  if (base.model.fingerprint !== model.fingerprint)
    needsFull(`version ${base.version} was built with model ${base.model.id}`);
  if (base.embedder.modelId !== embedder.modelId)
    needsFull(`version ${base.version} was embedded with ${base.embedder.modelId}`);

  // ── the new turns, continuing the base's last session ──
  if (!delta.sessions.some((s) => s.turns.length > 0))
    throw new EpicacheError("invalid_argument", "an update needs at least one new message");
  const newSpeaker = delta.speakers.find((s) => !state.speakers.includes(s));
  if (newSpeaker !== undefined)
    needsFull(`a new speaker, ${newSpeaker}, changes the context's header`);
  const turns = delta.sessions.flatMap((s) => s.turns);
  const total = state.turns + turns.length;
  const regrowth = opts.regrowth ?? 2;
  if (total > regrowth * state.turnsAtClustering)
    needsFull(
      `the history grew to ${(total / state.turnsAtClustering).toFixed(1)}× its size at the last clustering`,
    );
  const continues = delta.sessions[0].index === state.cursor.index && state.cursor.turns > 0;
  const frame = chatFrame(model.tokenizer);
  const tokens = frame.history(renderContinuation(delta, { continues }));
  stage("render");

  // ── windows: the base's unfinished one completed first, then new ones ──
  const size = 4;
  const lines = [...(state.tail?.lines ?? []), ...turns.map(formatTurnLine)];
  const windowCount = base.episodes.reduce((n, e) => n + e.windows.length, 0);
  const firstIndex = state.tail ? state.tail.index : windowCount;
  const texts: string[] = [];
  for (let i = 0; i < lines.length; i += size) texts.push(lines.slice(i, i + size).join("\n"));
  const vectors = await embedder.embed(texts);
  stage("embed");
  const sums = state.episodes.map((e) => Float32Array.from(e.sum));
  const counts = state.episodes.map((e) => e.count);
  const members = base.episodes.map((e) => new Set(e.windows));
  if (state.tail) {
    // The unfinished window leaves its episode; completed, it joins the nearest again.
    const from = members.findIndex((m) => m.has(state.tail?.index ?? -1));
    if (from >= 0) {
      members[from].delete(state.tail.index);
      state.tail.vector.forEach((x, d) => (sums[from][d] -= x));
      counts[from]--;
    }
  }
  const cohesion = joinNearest({ sums, counts, members }, vectors, firstIndex);
  const threshold = opts.cohesion ?? DRIFT_THRESHOLD;
  if (cohesion < threshold * state.cohesion)
    needsFull(
      `the new windows sit far from every episode (mean cosine ${cohesion.toFixed(3)} against ${state.cohesion.toFixed(3)} at the last clustering)`,
    );
  stage("assign");

  // ── each episode's cache, continued over the new tokens with its fixed prompt ──
  const { config } = model;
  const window = config.contextLength;
  const compact =
    (base.positions ?? "original") === "compact"
      ? { window, mover: repositioner(config, { f16: model.numerics === "ggml" }) }
      : undefined;
  const dtype = target.dtype ?? base.dtype;
  let maxPosition = 0;
  const episodes: EpisodeManifest["episodes"] = [];
  for (const [e, entry] of base.episodes.entries()) {
    const cache = await target.store.loadEpisode(base, e);
    const prefilled = await blockPrefill(model.decoder, cache, tokens, {
      blockSize: base.block,
      budgets: base.layerBudgets,
      policy: base.layerBudgets
        ? policyFor(base.method as Parameters<typeof policyFor>[0], frame, state.episodes[e].prompt)
        : null,
      compact,
      pause: opts.pause,
      onBlock: ({ block, blocks }) =>
        opts.onProgress?.({ episode: e, episodes: base.episodes.length, block, blocks }),
    });
    maxPosition = Math.max(maxPosition, prefilled.maxPosition);
    const stored = await target.store.writeEpisode(target, e, cache, {
      fingerprint: model.fingerprint,
      budget: base.budget,
      dtype,
    });
    episodes.push({
      ...entry,
      ...stored,
      centroid: Array.from(l2Normalize(Float32Array.from(sums[e]))),
      windows: [...members[e]].sort((a, b) => a - b),
      entries: cache.entries,
      layerEntries: cache.layerEntries,
    });
  }
  stage("prefill");

  const lastLines = lines.length % size;
  const update: UpdateState = {
    ...state,
    kind: "incremental",
    reason: "new messages",
    baseVersion: base.version,
    lastTurnId: turns[turns.length - 1].id,
    cursor,
    turns: total,
    tail:
      lastLines === 0
        ? null
        : {
            index: firstIndex + texts.length - 1,
            lines: lines.slice(lines.length - lastLines),
            vector: Array.from(vectors[vectors.length - 1]),
          },
    episodes: state.episodes.map((e, i) => ({ ...e, sum: Array.from(sums[i]), count: counts[i] })),
  };
  const manifest: EpisodeManifest = {
    ...base,
    format: MANIFEST_FORMAT,
    tenant: target.tenant,
    conversation: target.conversation,
    version: target.version,
    dtype,
    routing: extendRouting(base, firstIndex, vectors, texts),
    contextTokens: base.contextTokens + tokens.length,
    episodes,
    update,
    createdAt: new Date().toISOString(),
  };
  const published = target.publish === false ? null : await target.store.publish(manifest);
  stage("publish");
  return {
    manifest,
    published,
    newTurns: turns.length,
    newTokens: tokens.length,
    positions: { max: maxPosition, window },
    seconds,
  };
}

/** The base's routing data with the new windows' vectors (and terms) from `firstIndex` on (the unfinished one replaced). */
function extendRouting(
  base: EpisodeManifest,
  firstIndex: number,
  vectors: readonly Float32Array[],
  texts: readonly string[],
): ManifestRouting {
  const routing = base.routing;
  if (routing.rule === "centroid") return routing;
  const kept = decodeWindowVectors(routing.windowVectors, base.embedder.dimension).slice(
    0,
    firstIndex,
  );
  const windowVectors = encodeWindowVectors([...kept, ...vectors]);
  if (routing.rule === "lexical") {
    return {
      ...routing,
      windowVectors,
      windowTerms: [
        ...routing.windowTerms.slice(0, firstIndex),
        ...texts.map((t) => lexicalTerms(t).join(" ")),
      ],
    };
  }
  return { ...routing, windowVectors };
}

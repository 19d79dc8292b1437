/**
 * The choice between continuing a version and building the history again, made in one place for the
 * callers that hold the whole history: the command line's `update` and the evaluation's
 * session-by-session builds. (The runner holds only the new messages: it refuses with
 * `base_unusable`, and the edge sends the whole transcript as a full rebuild.)
 */
import { isEpicacheError, type Conversation, type SessionCursor } from "@epicache/shared";
import type { OnnxEmbedder } from "../embedder";
import type { ChatModel } from "../runtime";
import { buildEpisodes, type BuildOptions, type BuildTarget } from "./build-episodes";
import type { EpisodeStore } from "./episode-store";
import type { EpisodeManifest } from "./manifest";
import { continueEpisodes } from "./update-episodes";

/** What {@link updateOrBuild} made. */
export interface UpdateOrBuildResult {
  manifest: EpisodeManifest;
  kind: "incremental" | "full";
  /** The update's reason ("new messages"), or why the history was built again. */
  reason: string;
  positions: { max: number; window: number };
  seconds: Record<string, number>;
}

/**
 * Continues `base` with `next.delta` (the sessions after its history; the transcript then stands at
 * `next.cursor`) when it can; when the base refuses (`base_unusable`: a new speaker, drift, growth
 * past its regrowth factor, …) or `next` already says why it cannot (`{ full: reason }`), builds
 * `whole` with `options` and that reason. Progress and logging go to `options.log` and
 * `options.onProgress` either way.
 *
 * @example
 * ```ts
 * const made = await updateOrBuild(model, embedder, base, { delta, cursor }, conversation, target, rebuildOptions(base, { log }));
 * console.log(made.kind, made.reason, made.manifest.version);
 * ```
 */
export async function updateOrBuild(
  model: ChatModel,
  embedder: OnnxEmbedder,
  base: EpisodeManifest,
  next: { delta: Conversation; cursor: SessionCursor } | { full: string },
  whole: Conversation,
  target: BuildTarget & { store: EpisodeStore },
  options: BuildOptions,
): Promise<UpdateOrBuildResult> {
  let reason: string;
  if ("full" in next) {
    reason = next.full;
  } else {
    try {
      const update = await continueEpisodes(
        model,
        embedder,
        base,
        next.delta,
        next.cursor,
        target,
        { log: options.log, onProgress: options.onProgress, pause: options.pause },
      );
      return {
        manifest: update.manifest,
        kind: "incremental",
        reason: update.manifest.update?.reason ?? "new messages",
        positions: update.positions,
        seconds: update.seconds,
      };
    } catch (e) {
      if (!isEpicacheError(e) || e.code !== "base_unusable") throw e;
      reason = e.message;
    }
  }
  options.log?.(`a full build: ${reason}`);
  const built = await buildEpisodes(model, embedder, whole, target, { ...options, reason });
  return {
    manifest: built.manifest,
    kind: "full",
    reason,
    positions: built.positions,
    seconds: built.seconds,
  };
}

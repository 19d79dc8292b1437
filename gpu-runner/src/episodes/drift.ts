/**
 * How far new windows sit from the episodes a full build chose: the measure behind an update's drift
 * refusal (update-episodes.ts) and `npm run bench:drift`, which chose its threshold.
 *
 * Both sides measure a window against a centroid it is no part of: at the clustering, each window
 * against its episode's centroid without it (leave-one-out); in an update, each new window against
 * the running means before it joins the nearest. Counting a window in its own centroid would put a
 * one-window episode at cosine 1 and make every update after a short history look like drift.
 */
import { cosine, l2Normalize } from "@epicache/shared";

/**
 * Mean leave-one-out cosine of the windows to their episode's centroid; episodes of one window are
 * left out (they have no centroid without it). 0 when no episode has two windows: nothing to tell
 * drift by, and no update is refused for it.
 */
export function clusteringCohesion(
  vectors: readonly Float32Array[],
  groups: ReadonlyArray<{ windows: readonly number[] }>,
): number {
  let total = 0;
  let counted = 0;
  for (const g of groups) {
    if (g.windows.length < 2) continue;
    const sum = new Float32Array(vectors[g.windows[0]].length);
    for (const w of g.windows) vectors[w].forEach((x, d) => (sum[d] += x));
    for (const w of g.windows) {
      total += cosine(vectors[w], l2Normalize(Float32Array.from(sum, (x, d) => x - vectors[w][d])));
      counted++;
    }
  }
  return counted ? total / counted : 0;
}

/** Episodes as running means: per episode, the sum of its windows' unit vectors, their count and their indices. */
export interface RunningEpisodes {
  sums: Float32Array[];
  counts: number[];
  members: Array<Set<number>>;
}

/**
 * Adds new windows in order, each to the episode with the nearest running-mean centroid (which then
 * moves), numbered from `firstIndex`; returns their mean cosine to the centroid they joined, as it was
 * before they joined.
 */
export function joinNearest(
  episodes: RunningEpisodes,
  vectors: readonly Float32Array[],
  firstIndex: number,
): number {
  let cohesion = 0;
  vectors.forEach((v, i) => {
    const centroids = episodes.sums.map((s) => l2Normalize(Float32Array.from(s)));
    let best = 0;
    for (let e = 1; e < centroids.length; e++)
      if (cosine(v, centroids[e]) > cosine(v, centroids[best])) best = e;
    cohesion += cosine(v, centroids[best]);
    episodes.members[best].add(firstIndex + i);
    v.forEach((x, d) => (episodes.sums[best][d] += x));
    episodes.counts[best]++;
  });
  return vectors.length ? cohesion / vectors.length : 0;
}

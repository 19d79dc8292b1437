/**
 * Stage 1 of EpiCache after embedding (docs/design.md §1): k-means of the window embeddings into episodes,
 * and each episode's representative windows.
 *
 * k-means is ml-kmeans (k-means++ initialisation, Lloyd iterations on squared Euclidean distance),
 * restarted from several seeds derived from one seed; the partition with the lowest inertia wins.
 * Everything is deterministic for a seed: the same vectors give the same episodes, numbered in
 * order of their first window, so episode 0 is the one the conversation enters first.
 */
import { kmeans } from "ml-kmeans";
import {
  cosine,
  EpicacheError,
  l2Normalize,
  medoidCount,
  type MedoidCount,
} from "@epicache/shared";

export interface ClusterOptions {
  /** Seed of the restarts (a non-negative integer, default 0); restart r runs from {@link restartSeed}(seed, r). */
  seed?: number;
  /** k-means++ restarts (default 10, as scikit-learn's `n_init`); the lowest inertia wins, ties to the earlier restart. */
  restarts?: number;
  /** Lloyd iterations per restart (default 300, as scikit-learn). */
  maxIterations?: number;
}

/** Why fewer episodes than asked for were made. */
export interface KClamp {
  /** The k that was asked for. */
  requested: number;
  /** `fewer_vectors`: k ≥ the number of vectors; `fewer_distinct_vectors`: k ≥ the number of distinct vectors. */
  reason: "fewer_vectors" | "fewer_distinct_vectors";
  /** For logs and reports. */
  message: string;
}

export interface EpisodeClustering {
  /** [n] the episode of each vector, 0 … k−1, numbered by first appearance (chronological order). */
  assignments: number[];
  /** k × [dim] the episodes' mean vectors, L2-normalised (the routing centroids). */
  centroids: Float32Array[];
  /** Σ over vectors of the squared Euclidean distance to its episode's (unnormalised) mean. */
  inertia: number;
  /** The number of episodes made: the k asked for, or fewer (see {@link clamped}). */
  k: number;
  /** Set when k was lowered: there were not enough (distinct) vectors for the k asked for. */
  clamped: KClamp | null;
}

const DEFAULTS = { seed: 0, restarts: 10, maxIterations: 300 };

/**
 * Clusters window embeddings into `k` episodes with k-means (k-means++ init, `restarts` seeded
 * restarts, lowest inertia kept). When there are fewer distinct vectors than `k`, k is lowered to
 * that number and the result says so (`clamped`); duplicates then share an episode. No vectors
 * give no episodes (k = 0, clamped).
 *
 * @example
 * ```ts
 * const vectors = await embedder.embed(windows.map((w) => w.text));
 * const { assignments, centroids, k, clamped } = clusterEpisodes(vectors, 4, { seed: 42 });
 * // assignments[i] ∈ [0, k); centroids[e] has unit norm; clamped is null unless there were < 4 distinct windows
 * ```
 */
export function clusterEpisodes(
  vectors: readonly Float32Array[],
  k: number,
  opts: ClusterOptions = {},
): EpisodeClustering {
  const { seed, restarts, maxIterations } = { ...DEFAULTS, ...opts };
  if (!Number.isInteger(k) || k < 1)
    throw new EpicacheError("invalid_argument", `k must be a positive integer, got ${k}`);
  if (!Number.isSafeInteger(seed) || seed < 0)
    throw new EpicacheError("invalid_argument", `seed must be a non-negative integer, got ${seed}`);
  if (!Number.isInteger(restarts) || restarts < 1)
    throw new EpicacheError(
      "invalid_argument",
      `restarts must be a positive integer, got ${restarts}`,
    );
  if (!Number.isInteger(maxIterations) || maxIterations < 1)
    throw new EpicacheError(
      "invalid_argument",
      `maxIterations must be a positive integer, got ${maxIterations}`,
    );
  checkVectors(vectors);

  const n = vectors.length;
  const distinct = countDistinct(vectors);
  const kEff = Math.min(k, distinct);
  const clamped: KClamp | null =
    kEff === k
      ? null
      : distinct === n
        ? {
            requested: k,
            reason: "fewer_vectors",
            message: `${k} episodes asked for ${n} windows: made ${kEff}`,
          }
        : {
            requested: k,
            reason: "fewer_distinct_vectors",
            message: `${k} episodes asked for ${n} windows of which ${distinct} are distinct: made ${kEff}`,
          };
  if (kEff === 0) return { assignments: [], centroids: [], inertia: 0, k: 0, clamped };

  const data = vectors.map((v) => Array.from(v)); // n × [dim], float64 copies for ml-kmeans
  let best: Partition | null = null;
  for (let r = 0; r < restarts; r++) {
    const candidate = runRestart(data, kEff, restartSeed(seed, r), maxIterations);
    if (best === null || candidate.inertia < best.inertia) best = candidate;
  }
  // The loop ran at least once (restarts ≥ 1).
  const { assignments, means, inertia } = best as Partition;
  if (means.length !== kEff)
    throw new Error(
      `clusterEpisodes: every restart left an episode empty after ${MAX_REPAIRS} repairs`,
    );
  return {
    assignments,
    centroids: means.map((m, e) => centroidOf(m, vectors, assignments, e)),
    inertia,
    k: kEff,
    clamped,
  };
}

/**
 * Per episode, the windows closest to its centroid by cosine (ties to the earlier window), as many as
 * `nMedoid` says (a count, or a share of the episode's windows), returned in chronological (index)
 * order, as the authors' `make_cluster_prompt` orders them.
 *
 * @example
 * ```ts
 * const reps = representatives(vectors, clusters.assignments, clusters.centroids, "25%");
 * reps[e]; // e.g. [3, 17, 18, 40]: the windows of episode e's patched prompt
 * ```
 */
export function representatives(
  vectors: readonly Float32Array[],
  assignments: readonly number[],
  centroids: readonly Float32Array[],
  nMedoid: MedoidCount,
): number[][] {
  medoidCount(nMedoid, 1); // checks the spec even for an empty conversation
  if (assignments.length !== vectors.length)
    throw new EpicacheError(
      "invalid_argument",
      `${assignments.length} assignments for ${vectors.length} vectors`,
    );
  const members: Array<Array<{ index: number; similarity: number }>> = centroids.map(() => []);
  assignments.forEach((e, index) => {
    if (!Number.isInteger(e) || e < 0 || e >= centroids.length)
      throw new EpicacheError(
        "invalid_argument",
        `vector ${index} is assigned to episode ${e} of ${centroids.length}`,
      );
    members[e].push({ index, similarity: cosine(vectors[index], centroids[e]) });
  });
  return members.map((list) =>
    list
      .sort((a, b) => b.similarity - a.similarity || a.index - b.index)
      .slice(0, medoidCount(nMedoid, list.length))
      .map((m) => m.index)
      .sort((a, b) => a - b),
  );
}

/**
 * The seed of restart `r`: murmur3's 32-bit finaliser over the seed's two halves and `r`, so that
 * nearby seeds and restarts give unrelated k-means++ draws.
 */
export function restartSeed(seed: number, r: number): number {
  const lo = seed >>> 0;
  const hi = Math.floor(seed / 2 ** 32) >>> 0;
  return fmix32(lo ^ fmix32(hi ^ fmix32((r + 0x9e3779b9) >>> 0)));
}

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A partition with canonical labels (first appearance) and its k-means objective. */
interface Partition {
  assignments: number[]; // [n]
  means: Float64Array[]; // k × [dim], unnormalised
  inertia: number;
}

/** Empty clusters get reseeded at most this many times per restart before giving up on the restart. */
const MAX_REPAIRS = 5;

/**
 * One k-means++ start and its Lloyd iterations. ml-kmeans leaves a cluster that loses all its
 * members where it was; such a cluster is reseeded at the point farthest from its own mean and
 * Lloyd continues from there, so every episode has members (there are at least k distinct points).
 */
function runRestart(data: number[][], k: number, seed: number, maxIterations: number): Partition {
  let clusters = kmeans(data, k, { initialization: "kmeans++", seed, maxIterations }).clusters;
  for (let repair = 0; repair < MAX_REPAIRS; repair++) {
    const sizes = new Array<number>(k).fill(0);
    for (const c of clusters) sizes[c]++;
    if (sizes.every((s) => s > 0)) break;
    clusters = kmeans(data, k, {
      initialization: reseedEmpty(data, clusters, k),
      maxIterations,
    }).clusters;
  }
  return partitionOf(data, clusters, k);
}

/**
 * Centers for a restart where some clusters are empty: the means of the others, and for each empty
 * one the point farthest from its mean among clusters that can spare one (more than one member),
 * not already taken as a center.
 */
export function reseedEmpty(
  data: readonly number[][],
  clusters: readonly number[],
  k: number,
): number[][] {
  const dim = data[0].length;
  const sums = Array.from({ length: k }, () => new Float64Array(dim));
  const sizes = new Array<number>(k).fill(0);
  clusters.forEach((c, i) => {
    sizes[c]++;
    for (let d = 0; d < dim; d++) sums[c][d] += data[i][d];
  });
  const centers = sums.map((s, c) => Array.from(s, (x) => x / Math.max(sizes[c], 1)));
  const distance = clusters.map((c, i) => squaredDistance(data[i], centers[c]));
  const taken = new Set<number>();
  for (let c = 0; c < k; c++) {
    if (sizes[c] > 0) continue;
    let far = -1;
    for (let i = 0; i < data.length; i++) {
      if (taken.has(i) || sizes[clusters[i]] < 2) continue;
      if (far < 0 || distance[i] > distance[far]) far = i;
    }
    if (far < 0) throw new Error("reseedEmpty: no cluster can spare a point");
    taken.add(far);
    sizes[clusters[far]]--;
    centers[c] = data[far].slice();
  }
  return centers;
}

/** Relabels by first appearance, then computes the means and the inertia of that partition. */
function partitionOf(data: readonly number[][], clusters: readonly number[], k: number): Partition {
  const label = new Map<number, number>();
  const assignments = clusters.map((c) => {
    let l = label.get(c);
    if (l === undefined) label.set(c, (l = label.size));
    return l;
  });
  // Canonical labels make equal partitions sum in the same order, so their inertias tie exactly.
  const kSeen = label.size;
  const dim = data[0].length;
  const means = Array.from({ length: kSeen }, () => new Float64Array(dim));
  const sizes = new Array<number>(kSeen).fill(0);
  assignments.forEach((e, i) => {
    sizes[e]++;
    for (let d = 0; d < dim; d++) means[e][d] += data[i][d];
  });
  means.forEach((m, e) => m.forEach((x, d) => (m[d] = x / sizes[e])));
  let inertia = 0;
  assignments.forEach((e, i) => (inertia += squaredDistance(data[i], means[e])));
  // A restart whose empty clusters could not be repaired loses to any complete one.
  return { assignments, means, inertia: kSeen === k ? inertia : Number.POSITIVE_INFINITY };
}

/** The normalised mean; if the members cancel out (mean ≈ 0), the direction of the episode's first window. */
function centroidOf(
  mean: Float64Array,
  vectors: readonly Float32Array[],
  assignments: readonly number[],
  e: number,
): Float32Array {
  const c = l2Normalize(Array.from(mean));
  if (c.some((x) => x !== 0)) return c;
  return l2Normalize(vectors[assignments.indexOf(e)]);
}

function squaredDistance(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let d = 0; d < a.length; d++) {
    const x = a[d] - b[d];
    s += x * x;
  }
  return s;
}

/** Same dimension, finite entries, no zero vector (it has no direction to compare by cosine). */
function checkVectors(vectors: readonly Float32Array[]): void {
  const dim = vectors[0]?.length ?? 0;
  vectors.forEach((v, i) => {
    if (v.length !== dim || dim === 0)
      throw new EpicacheError(
        "invalid_argument",
        `vector ${i} has ${v.length} entries, vector 0 has ${dim}`,
      );
    let norm = 0;
    for (let d = 0; d < dim; d++) {
      if (!Number.isFinite(v[d]))
        throw new EpicacheError(
          "invalid_argument",
          `vector ${i} has a non-finite entry at ${d}: ${v[d]}`,
        );
      norm += v[d] * v[d];
    }
    if (norm === 0)
      throw new EpicacheError("invalid_argument", `vector ${i} is zero: it has no direction`);
  });
}

/** Distinct vectors by value (−0 and 0 equal). */
function countDistinct(vectors: readonly Float32Array[]): number {
  const seen = new Set<string>();
  // `x + 0` turns −0 into 0; the key is the float32 bytes.
  for (const v of vectors)
    seen.add(Buffer.from(Float32Array.from(v, (x) => x + 0).buffer).toString("latin1"));
  return seen.size;
}

import { EpicacheError } from "../errors";
import { nearestCentroid } from "./nearest-centroid";
import { checkFinite, type Vector } from "./vectors";

/** The ways a question can be routed to an episode (see {@link routeQuestion}). */
export const ROUTING_RULES = ["centroid", "window", "vote"] as const;

/**
 * How a question is routed to an episode; `vote` names how many windows vote.
 *
 * @example
 * ```ts
 * const rules: RoutingRule[] = [{ rule: "centroid" }, { rule: "window" }, { rule: "vote", k: 3 }];
 * ```
 */
export type RoutingRule = { readonly rule: "centroid" } | { readonly rule: "window" } | { readonly rule: "vote"; readonly k: number };

/**
 * The rule a build records when none is asked for: `window`, which sent the most questions to an
 * episode holding their evidence on LoCoMo and REALTALK, cut and whole (README, "Routing").
 */
export const DEFAULT_ROUTING: RoutingRule = { rule: "window" };

/** The windows that vote when `vote` is asked for without a k: 3 did best of 3, 5 and 8 on average (README, "Routing"). */
export const DEFAULT_VOTE_K = 3;

/**
 * What routing reads of a built version: one centroid per episode, and for `window` and `vote` every
 * window's vector (any length: they are compared by cosine) and episode.
 *
 * @example
 * ```ts
 * const data: RoutingData = { centroids: [[1, 0], [0, 1]], windows: [[1, 0], [0.9, 0.1], [0, 1]], windowEpisodes: [0, 0, 1] };
 * ```
 */
export interface RoutingData {
  /** [episodes] × [dim]. */
  readonly centroids: readonly Vector[];
  /** [windows] × [dim]: float or int8 (window-vectors.ts); needed by `window` and `vote`. */
  readonly windows?: readonly ArrayLike<number>[];
  /** [windows]: each window's episode, 0 … episodes − 1. */
  readonly windowEpisodes?: readonly number[];
}

/**
 * What {@link routeQuestion} returns.
 *
 * @example
 * ```ts
 * const { episode, scores }: RoutedQuestion = routeQuestion({ rule: "window" }, question, data);
 * ```
 */
export interface RoutedQuestion {
  /** The episode's index, 0 … episodes − 1. */
  readonly episode: number;
  /**
   * Per episode, what the rule compared: `centroid`, the question's cosine with the centroid;
   * `window`, the highest cosine of one of the episode's windows (−Infinity without windows);
   * `vote`, the episode's votes among the top k windows.
   */
  readonly scores: readonly number[];
}

/**
 * Routes a question to an episode (DESIGN.md §1, stage 3) by `rule`:
 *
 * - `centroid`: the episode whose centroid has the highest cosine with the question
 *   ({@link nearestCentroid}). The authors' code (ml-epicache utils/cluster.py) takes the dot product
 *   with the unnormalised centroids instead, which favours episodes of alike windows; it routed
 *   fewer questions to their evidence here (README, "Routing").
 * - `window`: the episode of the window with the highest cosine to the question.
 * - `vote`: the k windows with the highest cosine each give their episode a vote; the most votes
 *   win, ties to the higher summed cosine.
 *
 * Remaining ties go to the lower index. No centroids, missing window data for a window rule,
 * mismatched dimensions or lengths, a window's episode out of range or a non-finite question are
 * `invalid_argument`.
 *
 * @example
 * ```ts
 * const data = { centroids: [[1, 0], [0, 1]], windows: [[1, 0], [0.6, 0.8], [0, 1], [0.2, 1]], windowEpisodes: [0, 0, 1, 1] };
 * routeQuestion({ rule: "centroid" }, [0.6, 0.8], data).episode; // 1: cosines 0.6 and 0.8
 * routeQuestion({ rule: "window" }, [0.6, 0.8], data).episode; // 0: window 1 (cosine 1) is episode 0's
 * routeQuestion({ rule: "vote", k: 3 }, [0.6, 0.8], data).episode; // 1: windows 1, 3, 2 vote 0, 1, 1
 * ```
 */
export function routeQuestion(rule: RoutingRule, question: Vector, data: RoutingData): RoutedQuestion {
  const episodes = data.centroids.length;
  if (episodes === 0) throw new EpicacheError("invalid_argument", "routing needs at least one episode centroid");
  checkFinite(question, "question");
  if (rule.rule === "centroid") {
    const { index, cosines } = nearestCentroid(question, data.centroids);
    return { episode: index, scores: cosines };
  }
  if (rule.rule !== "window" && rule.rule !== "vote") throw new EpicacheError("invalid_argument", `no routing rule ${JSON.stringify((rule as { rule: unknown }).rule)}: one of ${ROUTING_RULES.join(", ")}`);
  if (rule.rule === "vote" && !(Number.isInteger(rule.k) && rule.k >= 1)) throw new EpicacheError("invalid_argument", `vote needs a positive integer k, got ${rule.k}`);
  const { cosines, episodeOf } = windowCosines(question, data, episodes);
  if (rule.rule === "window") {
    const scores = new Array<number>(episodes).fill(Number.NEGATIVE_INFINITY);
    cosines.forEach((c, w) => {
      if (c > scores[episodeOf[w]]) scores[episodeOf[w]] = c;
    });
    return { episode: argmax(scores), scores };
  }
  // The top k windows by cosine, ties to the earlier window.
  const top = cosines.map((c, w) => ({ c, w })).sort((a, b) => b.c - a.c || a.w - b.w).slice(0, rule.k);
  const votes = new Array<number>(episodes).fill(0);
  const sums = new Array<number>(episodes).fill(0);
  for (const { c, w } of top) {
    votes[episodeOf[w]]++;
    sums[episodeOf[w]] += c;
  }
  let episode = 0;
  for (let e = 1; e < episodes; e++) if (votes[e] > votes[episode] || (votes[e] === votes[episode] && sums[e] > sums[episode])) episode = e;
  return { episode, scores: votes };
}

/** [windows] the cosine of the question with every window, and every window's episode, after checking them. */
function windowCosines(question: Vector, data: RoutingData, episodes: number): { cosines: number[]; episodeOf: readonly number[] } {
  const { windows, windowEpisodes } = data;
  if (windows === undefined || windowEpisodes === undefined || windows.length === 0) {
    throw new EpicacheError("invalid_argument", "routing by windows needs the windows' vectors and episodes");
  }
  if (windowEpisodes.length !== windows.length) throw new EpicacheError("invalid_argument", `${windows.length} window vectors but ${windowEpisodes.length} window episodes`);
  const qNorm = norm(question);
  const cosines = windows.map((v, w) => {
    const e = windowEpisodes[w];
    if (!Number.isInteger(e) || e < 0 || e >= episodes) throw new EpicacheError("invalid_argument", `window ${w} is in episode ${e}, not one of the ${episodes}`);
    sameDimension(question, v, `window ${w}`);
    const denominator = qNorm * norm(v);
    return denominator === 0 ? 0 : dot(question, v) / denominator;
  });
  return { cosines, episodeOf: windowEpisodes };
}

function sameDimension(question: Vector, v: ArrayLike<number>, what: string): void {
  if (v.length !== question.length) throw new EpicacheError("invalid_argument", `the question has ${question.length} dimensions, ${what} has ${v.length}`);
}

function argmax(scores: readonly number[]): number {
  let best = 0;
  for (let i = 1; i < scores.length; i++) if (scores[i] > scores[best]) best = i;
  return best;
}

function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

function norm(v: ArrayLike<number>): number {
  return Math.sqrt(dot(v, v));
}

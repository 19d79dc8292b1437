import { EpicacheError } from "../errors";
import { bm25Scores } from "./bm25";
import { lexicalTerms } from "./lexical-terms";
import { nearestCentroid } from "./nearest-centroid";
import { checkFinite, type Vector } from "./vectors";

/** The ways a question can be routed to an episode (see {@link routeQuestion}). */
export const ROUTING_RULES = ["centroid", "window", "vote", "lexical"] as const;

/**
 * How a question is routed to an episode; `vote` names how many windows vote.
 *
 * @example
 * ```ts
 * const rules: RoutingRule[] = [{ rule: "lexical" }, { rule: "window" }, { rule: "vote", k: 3 }, { rule: "centroid" }];
 * ```
 */
export type RoutingRule =
  | { readonly rule: "centroid" }
  | { readonly rule: "window" }
  | { readonly rule: "vote"; readonly k: number }
  | { readonly rule: "lexical" };

/**
 * The rule a build records when none is asked for: `lexical`, which sent the most questions to an
 * episode holding their evidence on LoCoMo and REALTALK, cut and whole, and the only rule over 75 %
 * on LoCoMo dev (README, "Routing").
 */
export const DEFAULT_ROUTING: RoutingRule = { rule: "lexical" };

/** The windows that vote when `vote` is asked for without a k: 3 did best of 3, 5 and 8 on average (README, "Routing"). */
export const DEFAULT_VOTE_K = 3;

/**
 * A question as routing reads it: its embedding (every rule but `lexical`, and `lexical` when it
 * falls back) and its text (`lexical`).
 *
 * @example
 * ```ts
 * const question: RoutingQuestion = { vector: await embed(text), text };
 * ```
 */
export interface RoutingQuestion {
  readonly vector: Vector;
  readonly text: string;
}

/**
 * What routing reads of a built version: one centroid per episode; for `window`, `vote` and `lexical`
 * every window's vector (any length: they are compared by cosine) and episode; for `lexical` also
 * every window's terms (shared lexicalTerms of its text).
 *
 * @example
 * ```ts
 * const data: RoutingData = {
 *   centroids: [[1, 0], [0, 1]], windows: [[1, 0], [0.9, 0.1], [0, 1]], windowEpisodes: [0, 0, 1],
 *   windowTerms: [["hik", "trail"], ["dog", "vet"], ["pottery", "class"]],
 * };
 * ```
 */
export interface RoutingData {
  /** [episodes] × [dim]. */
  readonly centroids: readonly Vector[];
  /** [windows] × [dim]: float or int8 (window-vectors.ts); needed by `window`, `vote` and `lexical`. */
  readonly windows?: readonly ArrayLike<number>[];
  /** [windows]: each window's episode, 0 … episodes − 1. */
  readonly windowEpisodes?: readonly number[];
  /** [windows] × [terms]: each window's terms; needed by `lexical`. */
  readonly windowTerms?: readonly (readonly string[])[];
}

/**
 * What {@link routeQuestion} returns.
 *
 * @example
 * ```ts
 * const { episode, scores, scoredBy }: RoutedQuestion = routeQuestion({ rule: "lexical" }, question, data);
 * ```
 */
export interface RoutedQuestion {
  /** The episode's index, 0 … episodes − 1. */
  readonly episode: number;
  /**
   * Per episode, what the rule compared: `centroid`, the question's cosine with the centroid;
   * `window`, the highest cosine of one of the episode's windows (−Infinity without windows);
   * `vote`, the episode's votes among the top k windows; `lexical`, the highest BM25 score of one of
   * the episode's windows (−Infinity without windows).
   */
  readonly scores: readonly number[];
  /**
   * The rule that picked the episode and whose scores these are: the one asked for, except `window`
   * when `lexical` found none of the question's terms in any window.
   */
  readonly scoredBy: RoutingRule["rule"];
}

/**
 * Routes a question to an episode (docs/design.md §1, stage 3) by `rule`:
 *
 * - `centroid`: the episode whose centroid has the highest cosine with the question
 *   ({@link nearestCentroid}). The authors' code (ml-epicache utils/cluster.py) takes the dot product
 *   with the unnormalised centroids instead, which favours episodes of alike windows; it routed
 *   fewer questions to their evidence here (README, "Routing").
 * - `window`: the episode of the window with the highest cosine to the question.
 * - `vote`: the k windows with the highest cosine each give their episode a vote; the most votes
 *   win, ties to the higher summed cosine.
 * - `lexical`: the episode of the window with the highest BM25 score (shared bm25Scores, textbook
 *   parameters) of the question's terms against the windows' terms, ties to the earlier window. A
 *   question none of whose terms is in any window (or that has none: "What is it?") is routed by
 *   `window` instead, so a question is always routed.
 *
 * Remaining ties go to the lower index. No centroids, missing window data for a window rule,
 * mismatched dimensions or lengths, a window's episode out of range or a non-finite question are
 * `invalid_argument`.
 *
 * @example
 * ```ts
 * const data = {
 *   centroids: [[1, 0], [0, 1]], windows: [[1, 0], [0.6, 0.8], [0, 1], [0.2, 1]], windowEpisodes: [0, 0, 1, 1],
 *   windowTerms: [["hik"], ["dog", "vet"], ["pottery"], ["dog", "park"]],
 * };
 * const q = { vector: [0.6, 0.8], text: "Where does the pottery class meet?" };
 * routeQuestion({ rule: "centroid" }, q, data).episode; // 1: cosines 0.6 and 0.8
 * routeQuestion({ rule: "window" }, q, data).episode; // 0: window 1 (cosine 1) is episode 0's
 * routeQuestion({ rule: "vote", k: 3 }, q, data).episode; // 1: windows 1, 3, 2 vote 0, 1, 1
 * routeQuestion({ rule: "lexical" }, q, data).episode; // 1: only window 2 holds "pottery"
 * ```
 */
export function routeQuestion(
  rule: RoutingRule,
  question: RoutingQuestion,
  data: RoutingData,
): RoutedQuestion {
  const episodes = data.centroids.length;
  if (episodes === 0)
    throw new EpicacheError("invalid_argument", "routing needs at least one episode centroid");
  const vector = question.vector;
  checkFinite(vector, "question");
  if (rule.rule === "centroid") {
    const { index, cosines } = nearestCentroid(vector, data.centroids);
    return { episode: index, scores: cosines, scoredBy: "centroid" };
  }
  if (!(ROUTING_RULES as readonly string[]).includes(rule.rule))
    throw new EpicacheError(
      "invalid_argument",
      `no routing rule ${JSON.stringify((rule as { rule: unknown }).rule)}: one of ${ROUTING_RULES.join(", ")}`,
    );
  if (rule.rule === "vote" && !(Number.isInteger(rule.k) && rule.k >= 1))
    throw new EpicacheError("invalid_argument", `vote needs a positive integer k, got ${rule.k}`);
  const { windows, episodeOf } = checkWindows(vector, data, episodes);
  if (rule.rule === "lexical") {
    const terms = data.windowTerms;
    if (terms === undefined)
      throw new EpicacheError("invalid_argument", "lexical routing needs the windows' terms");
    if (terms.length !== episodeOf.length)
      throw new EpicacheError(
        "invalid_argument",
        `${episodeOf.length} window vectors but ${terms.length} windows' terms`,
      );
    const bm25 = bm25Scores(lexicalTerms(question.text), terms);
    // Every matching term adds a positive idf: 0 everywhere means no term of the question in any window.
    if (bm25.some((s) => s > 0)) {
      const { best, scores } = perEpisode(bm25, episodeOf, episodes);
      return { episode: episodeOf[best], scores, scoredBy: "lexical" };
    }
  }
  const cosines = windowCosines(vector, windows);
  if (rule.rule !== "vote") {
    // Ties between episodes' best windows go to the lower episode (as before lexical existed).
    const { scores } = perEpisode(cosines, episodeOf, episodes);
    return { episode: argmax(scores), scores, scoredBy: "window" };
  }
  // The top k windows by cosine, ties to the earlier window.
  const top = cosines
    .map((c, w) => ({ c, w }))
    .sort((a, b) => b.c - a.c || a.w - b.w)
    .slice(0, rule.k);
  const votes = new Array<number>(episodes).fill(0);
  const sums = new Array<number>(episodes).fill(0);
  for (const { c, w } of top) {
    votes[episodeOf[w]]++;
    sums[episodeOf[w]] += c;
  }
  let episode = 0;
  for (let e = 1; e < episodes; e++)
    if (votes[e] > votes[episode] || (votes[e] === votes[episode] && sums[e] > sums[episode]))
      episode = e;
  return { episode, scores: votes, scoredBy: "vote" };
}

/**
 * The best-scoring window (ties to the earlier window), and per episode the best score of its windows
 * (−Infinity without windows).
 */
function perEpisode(
  windowScores: ArrayLike<number>,
  episodeOf: readonly number[],
  episodes: number,
): { best: number; scores: number[] } {
  const scores = new Array<number>(episodes).fill(Number.NEGATIVE_INFINITY);
  let best = 0;
  for (let w = 0; w < windowScores.length; w++) {
    const s = windowScores[w];
    if (s > scores[episodeOf[w]]) scores[episodeOf[w]] = s;
    if (s > windowScores[best]) best = w;
  }
  return { best, scores };
}

/** Checks the window vectors and episodes that the window rules read, and returns them. */
function checkWindows(
  question: Vector,
  data: RoutingData,
  episodes: number,
): { windows: readonly ArrayLike<number>[]; episodeOf: readonly number[] } {
  const { windows, windowEpisodes } = data;
  if (windows === undefined || windowEpisodes === undefined || windows.length === 0) {
    throw new EpicacheError(
      "invalid_argument",
      "routing by windows needs the windows' vectors and episodes",
    );
  }
  if (windowEpisodes.length !== windows.length)
    throw new EpicacheError(
      "invalid_argument",
      `${windows.length} window vectors but ${windowEpisodes.length} window episodes`,
    );
  windows.forEach((v, w) => {
    const e = windowEpisodes[w];
    if (!Number.isInteger(e) || e < 0 || e >= episodes)
      throw new EpicacheError(
        "invalid_argument",
        `window ${w} is in episode ${e}, not one of the ${episodes}`,
      );
    sameDimension(question, v, `window ${w}`);
  });
  return { windows, episodeOf: windowEpisodes };
}

/** [windows] the cosine of the question with every window (checked by {@link checkWindows}). */
function windowCosines(question: Vector, windows: readonly ArrayLike<number>[]): number[] {
  const qNorm = norm(question);
  return windows.map((v) => {
    const denominator = qNorm * norm(v);
    return denominator === 0 ? 0 : dot(question, v) / denominator;
  });
}

function sameDimension(question: Vector, v: ArrayLike<number>, what: string): void {
  if (v.length !== question.length)
    throw new EpicacheError(
      "invalid_argument",
      `the question has ${question.length} dimensions, ${what} has ${v.length}`,
    );
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

import { describe, expect, it } from "vitest";
import { thrown } from "../testing";
import {
  DEFAULT_ROUTING,
  routeQuestion,
  type RoutingData,
  type RoutingQuestion,
} from "./route-question";
import { decodeWindowVectors, encodeWindowVectors } from "./window-vectors";

// Two episodes. Episode 0's centroid points along x, episode 1's along y; episode 0 holds one window
// close to the question (w1) and one far from it (w0), episode 1 two windows moderately close.
//   question q = [0.6, 0.8]
//   w0 [1, 0]    episode 0, cosine 0.6
//   w1 [0.6, 0.8] episode 0, cosine 1
//   w2 [0, 1]    episode 1, cosine 0.8
//   w3 [0.2, 1]  episode 1, cosine 0.902
// The windows' terms, for lexical routing: "said" and the speakers are common, the rest rare.
const q: RoutingQuestion = {
  vector: [0.6, 0.8],
  text: "When did Caroline go to the support group?",
};
const data: RoutingData = {
  centroids: [
    [1, 0],
    [0, 1],
  ],
  windows: [
    [1, 0],
    [0.6, 0.8],
    [0, 1],
    [0.2, 1],
  ],
  windowEpisodes: [0, 0, 1, 1],
  windowTerms: [
    ["caroline", "said", "adoption", "agency"],
    ["melanie", "said", "pottery", "class"],
    ["caroline", "said", "support", "group"],
    ["melanie", "said", "camp", "kid"],
  ],
};
/** The question with other words. */
const asking = (text: string): RoutingQuestion => ({ ...q, text });

describe("routeQuestion", () => {
  it("centroid: the centroid with the highest cosine, whatever its length", () => {
    const routed = routeQuestion({ rule: "centroid" }, q, data);
    expect(routed.episode).toBe(1);
    expect(routed.scores[0]).toBeCloseTo(0.6, 12);
    expect(routed.scores[1]).toBeCloseTo(0.8, 12);
    // A short centroid pointing the same way routes the same: directions, not lengths.
    expect(
      routeQuestion({ rule: "centroid" }, q, {
        centroids: [
          [5, 0],
          [0, 0.1],
        ],
      }).episode,
    ).toBe(1);
    expect(routed.scoredBy).toBe("centroid");
  });

  it("window: the episode of the nearest window, scored by its best window", () => {
    const routed = routeQuestion({ rule: "window" }, q, data);
    expect(routed.episode).toBe(0);
    expect(routed.scores[0]).toBeCloseTo(1, 12);
    expect(routed.scores[1]).toBeCloseTo(0.92 / Math.hypot(0.2, 1), 12);
  });

  it("vote: the most votes among the top k windows", () => {
    expect(routeQuestion({ rule: "vote", k: 1 }, q, data)).toEqual({
      episode: 0,
      scores: [1, 0],
      scoredBy: "vote",
    });
    // Top 3: w1 (episode 0), w3 and w2 (episode 1).
    expect(routeQuestion({ rule: "vote", k: 3 }, q, data)).toEqual({
      episode: 1,
      scores: [1, 2],
      scoredBy: "vote",
    });
    // k beyond the windows: every window votes once, 2 against 2; the summed cosines break the tie
    // (1.6 for episode 0 against 1.70 for episode 1).
    expect(routeQuestion({ rule: "vote", k: 10 }, q, data)).toEqual({
      episode: 1,
      scores: [2, 2],
      scoredBy: "vote",
    });
  });

  it("vote: a tie in votes goes to the higher summed cosine, then to the lower episode", () => {
    // Top 2: w1 (episode 0, cosine 1) and w3 (episode 1, 0.902): one vote each, episode 0 sums more.
    expect(routeQuestion({ rule: "vote", k: 2 }, q, data)).toEqual({
      episode: 0,
      scores: [1, 1],
      scoredBy: "vote",
    });
    // Mirror-image windows: equal votes and equal sums.
    const mirror: RoutingData = {
      centroids: [
        [1, 0],
        [0, 1],
      ],
      windows: [
        [1, 1],
        [1, 1],
      ],
      windowEpisodes: [1, 0],
    };
    expect(
      routeQuestion({ rule: "vote", k: 2 }, { vector: [1, 0], text: "" }, mirror).episode,
    ).toBe(0);
  });

  it("lexical: the episode of the window with the highest BM25 score, whatever the cosines say", () => {
    // w2 holds "caroline", "support" and "group"; w0 only "caroline". The nearest window is w1 (episode 0).
    const routed = routeQuestion({ rule: "lexical" }, q, data);
    expect(routed).toMatchObject({ episode: 1, scoredBy: "lexical" });
    expect(routed.scores[1]).toBeGreaterThan(routed.scores[0]);
    expect(routed.scores[0]).toBeGreaterThan(0);
    expect(routeQuestion({ rule: "window" }, q, data).episode).toBe(0);
  });

  it("lexical: a rare term outweighs a common one, forms of a word meet, and a shorter window outscores a longer one", () => {
    // "pottery" is in w1 only, "caroline" in w0 and w2.
    expect(
      routeQuestion({ rule: "lexical" }, asking("Did Caroline mention pottery?"), {
        ...data,
        windowEpisodes: [1, 0, 1, 1],
      }).episode,
    ).toBe(0);
    // "camping" and "kids" meet w3's "camp" and "kid".
    expect(
      routeQuestion({ rule: "lexical" }, asking("Who went camping with the kids?"), {
        ...data,
        windowEpisodes: [0, 0, 0, 1],
      }).episode,
    ).toBe(1);
    // "jazz" once in a short window (episode 1) and once in a long one (episode 0).
    const jazz: RoutingData = {
      ...data,
      windowTerms: [
        ["jazz", "band", "stage", "crowd", "night", "ticket", "said"],
        [],
        ["jazz", "said"],
        [],
      ],
    };
    expect(routeQuestion({ rule: "lexical" }, asking("Who likes jazz?"), jazz).episode).toBe(1);
  });

  it("lexical: equal scores go to the earlier window, whichever its episode", () => {
    const twins: RoutingData = {
      ...data,
      windowEpisodes: [1, 1, 0, 0],
      windowTerms: [["violin"], ["said"], ["violin"], ["said"]],
    };
    expect(routeQuestion({ rule: "lexical" }, asking("The violin?"), twins)).toMatchObject({
      episode: 1,
      scoredBy: "lexical",
    });
  });

  it("lexical: a question with no term in any window is routed by the nearest window", () => {
    for (const text of ["What is it?", "Who likes jazz?", ""]) {
      const routed = routeQuestion({ rule: "lexical" }, asking(text), data);
      expect(routed).toEqual({ ...routeQuestion({ rule: "window" }, q, data), scoredBy: "window" });
      expect(routed.episode).toBe(0);
    }
  });

  it("routes the same by int8 window vectors as stored", () => {
    const stored = {
      ...data,
      windows: decodeWindowVectors(encodeWindowVectors(data.windows as number[][]), 2),
    };
    for (const rule of [
      { rule: "window" } as const,
      { rule: "vote", k: 3 } as const,
      { rule: "lexical" } as const,
    ]) {
      expect(routeQuestion(rule, q, stored).episode).toBe(routeQuestion(rule, q, data).episode);
    }
  });

  it("lexical routing is the default", () => {
    expect(DEFAULT_ROUTING).toEqual({ rule: "lexical" });
  });

  it("rejects missing or inconsistent routing data", () => {
    const cases: [() => unknown, string][] = [
      [
        () => routeQuestion({ rule: "centroid" }, q, { centroids: [] }),
        "routing needs at least one episode centroid",
      ],
      [
        () => routeQuestion({ rule: "window" }, q, { centroids: [[1, 0]] }),
        "routing by windows needs the windows' vectors and episodes",
      ],
      [
        () => routeQuestion({ rule: "window" }, q, { ...data, windowEpisodes: [0, 0, 1] }),
        "4 window vectors but 3 window episodes",
      ],
      [
        () => routeQuestion({ rule: "window" }, q, { ...data, windowEpisodes: [0, 0, 1, 2] }),
        "window 3 is in episode 2, not one of the 2",
      ],
      [
        () =>
          routeQuestion({ rule: "window" }, q, {
            ...data,
            windows: [
              [1, 0],
              [1, 0],
              [1, 0],
              [1, 0, 0],
            ],
          }),
        "the question has 2 dimensions, window 3 has 3",
      ],
      [
        () => routeQuestion({ rule: "vote", k: 0 }, q, data),
        "vote needs a positive integer k, got 0",
      ],
      [
        () => routeQuestion({ rule: "lexical" }, q, { ...data, windowTerms: undefined }),
        "lexical routing needs the windows' terms",
      ],
      [
        () => routeQuestion({ rule: "lexical" }, q, { ...data, windowTerms: [[], [], []] }),
        "4 window vectors but 3 windows' terms",
      ],
      // Checked whether or not the question would fall back to them.
      [
        () =>
          routeQuestion({ rule: "lexical" }, q, {
            ...data,
            windows: [
              [1, 0],
              [1, 0],
              [1, 0],
              [1, 0, 0],
            ],
          }),
        "the question has 2 dimensions, window 3 has 3",
      ],
      [
        () => routeQuestion({ rule: "nearest" } as never, q, data),
        'no routing rule "nearest": one of centroid, window, vote, lexical',
      ],
      [
        () => routeQuestion({ rule: "window" }, { vector: [Number.NaN, 0], text: "" }, data),
        "question has a non-finite entry at 0: NaN",
      ],
    ];
    for (const [f, message] of cases)
      expect(thrown(f)).toMatchObject({ code: "invalid_argument", message });
  });
});

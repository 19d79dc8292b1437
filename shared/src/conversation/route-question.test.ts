import { describe, expect, it } from "vitest";
import { thrown } from "../testing";
import { DEFAULT_ROUTING, routeQuestion, type RoutingData } from "./route-question";
import { decodeWindowVectors, encodeWindowVectors } from "./window-vectors";

// Two episodes. Episode 0's centroid points along x, episode 1's along y; episode 0 holds one window
// close to the question (w1) and one far from it (w0), episode 1 two windows moderately close.
//   question q = [0.6, 0.8]
//   w0 [1, 0]    episode 0, cosine 0.6
//   w1 [0.6, 0.8] episode 0, cosine 1
//   w2 [0, 1]    episode 1, cosine 0.8
//   w3 [0.2, 1]  episode 1, cosine 0.902
const q = [0.6, 0.8];
const data: RoutingData = { centroids: [[1, 0], [0, 1]], windows: [[1, 0], [0.6, 0.8], [0, 1], [0.2, 1]], windowEpisodes: [0, 0, 1, 1] };

describe("routeQuestion", () => {
  it("centroid: the centroid with the highest cosine, whatever its length", () => {
    const routed = routeQuestion({ rule: "centroid" }, q, data);
    expect(routed.episode).toBe(1);
    expect(routed.scores[0]).toBeCloseTo(0.6, 12);
    expect(routed.scores[1]).toBeCloseTo(0.8, 12);
    // A short centroid pointing the same way routes the same: directions, not lengths.
    expect(routeQuestion({ rule: "centroid" }, q, { centroids: [[5, 0], [0, 0.1]] }).episode).toBe(1);
  });

  it("window: the episode of the nearest window, scored by its best window", () => {
    const routed = routeQuestion({ rule: "window" }, q, data);
    expect(routed.episode).toBe(0);
    expect(routed.scores[0]).toBeCloseTo(1, 12);
    expect(routed.scores[1]).toBeCloseTo(0.92 / Math.hypot(0.2, 1), 12);
  });

  it("vote: the most votes among the top k windows", () => {
    expect(routeQuestion({ rule: "vote", k: 1 }, q, data)).toEqual({ episode: 0, scores: [1, 0] });
    // Top 3: w1 (episode 0), w3 and w2 (episode 1).
    expect(routeQuestion({ rule: "vote", k: 3 }, q, data)).toEqual({ episode: 1, scores: [1, 2] });
    // k beyond the windows: every window votes once, 2 against 2; the summed cosines break the tie
    // (1.6 for episode 0 against 1.70 for episode 1).
    expect(routeQuestion({ rule: "vote", k: 10 }, q, data)).toEqual({ episode: 1, scores: [2, 2] });
  });

  it("vote: a tie in votes goes to the higher summed cosine, then to the lower episode", () => {
    // Top 2: w1 (episode 0, cosine 1) and w3 (episode 1, 0.902): one vote each, episode 0 sums more.
    expect(routeQuestion({ rule: "vote", k: 2 }, q, data)).toEqual({ episode: 0, scores: [1, 1] });
    // Mirror-image windows: equal votes and equal sums.
    const mirror: RoutingData = { centroids: [[1, 0], [0, 1]], windows: [[1, 1], [1, 1]], windowEpisodes: [1, 0] };
    expect(routeQuestion({ rule: "vote", k: 2 }, [1, 0], mirror).episode).toBe(0);
  });

  it("routes the same by int8 window vectors as stored", () => {
    const stored = { ...data, windows: decodeWindowVectors(encodeWindowVectors(data.windows as number[][]), 2) };
    for (const rule of [{ rule: "window" } as const, { rule: "vote", k: 3 } as const]) {
      expect(routeQuestion(rule, q, stored).episode).toBe(routeQuestion(rule, q, data).episode);
    }
  });

  it("window routing is the default", () => {
    expect(DEFAULT_ROUTING).toEqual({ rule: "window" });
  });

  it("rejects missing or inconsistent routing data", () => {
    const cases: [() => unknown, string][] = [
      [() => routeQuestion({ rule: "centroid" }, q, { centroids: [] }), "routing needs at least one episode centroid"],
      [() => routeQuestion({ rule: "window" }, q, { centroids: [[1, 0]] }), "routing by windows needs the windows' vectors and episodes"],
      [() => routeQuestion({ rule: "window" }, q, { ...data, windowEpisodes: [0, 0, 1] }), "4 window vectors but 3 window episodes"],
      [() => routeQuestion({ rule: "window" }, q, { ...data, windowEpisodes: [0, 0, 1, 2] }), "window 3 is in episode 2, not one of the 2"],
      [() => routeQuestion({ rule: "window" }, q, { ...data, windows: [[1, 0], [1, 0], [1, 0], [1, 0, 0]] }), "the question has 2 dimensions, window 3 has 3"],
      [() => routeQuestion({ rule: "vote", k: 0 }, q, data), "vote needs a positive integer k, got 0"],
      [() => routeQuestion({ rule: "nearest" } as never, q, data), 'no routing rule "nearest": one of centroid, window, vote'],
      [() => routeQuestion({ rule: "window" }, [Number.NaN, 0], data), "question has a non-finite entry at 0: NaN"],
    ];
    for (const [f, message] of cases) expect(thrown(f)).toMatchObject({ code: "invalid_argument", message });
  });
});

import { describe, expect, it } from "vitest";
import { l2Normalize } from "@epicache/shared";
import { seededRandom } from "../runtime/sampling";
import { clusterEpisodes, representatives, reseedEmpty, restartSeed } from "./cluster";

const rng = seededRandom;

function gaussian(r: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
}

function normalize(v: number[]): Float32Array {
  const n = Math.hypot(...v);
  return Float32Array.from(v, (x) => x / n);
}

function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/** Unit vectors around `k` random unit centers, in shuffled order; labels numbered by first appearance. */
function blobs(
  k: number,
  perCluster: number,
  dim: number,
  noise: number,
  seed: number,
): { vectors: Float32Array[]; labels: number[] } {
  const r = rng(seed);
  const centers = Array.from({ length: k }, () => Array.from({ length: dim }, () => gaussian(r)));
  const points = centers.flatMap((c, label) =>
    Array.from({ length: perCluster }, () => ({
      label,
      v: normalize(c.map((x) => x / Math.hypot(...c) + noise * gaussian(r))),
    })),
  );
  for (let i = points.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [points[i], points[j]] = [points[j], points[i]];
  }
  const first = new Map<number, number>();
  const labels = points.map((p) => {
    if (!first.has(p.label)) first.set(p.label, first.size);
    return first.get(p.label) as number; // set on the line above
  });
  return { vectors: points.map((p) => p.v), labels };
}

/** Unstructured unit vectors: k-means has many local optima here. */
function cloud(n: number, dim: number, seed: number): Float32Array[] {
  const r = rng(seed);
  return Array.from({ length: n }, () => normalize(Array.from({ length: dim }, () => gaussian(r))));
}

describe("clusterEpisodes", () => {
  it("recovers well-separated clusters exactly, numbered by first appearance", () => {
    const { vectors, labels } = blobs(4, 30, 384, 0.02, 1);
    const result = clusterEpisodes(vectors, 4, { seed: 42 });
    expect(result.k).toBe(4);
    expect(result.clamped).toBeNull();
    expect(result.assignments).toEqual(labels);
    expect(result.assignments[0]).toBe(0);
  });

  it("is deterministic for a seed", () => {
    const vectors = cloud(150, 16, 7);
    const a = clusterEpisodes(vectors, 4, { seed: 3, restarts: 5 });
    const b = clusterEpisodes(vectors, 4, { seed: 3, restarts: 5 });
    expect(b.assignments).toEqual(a.assignments);
    expect(b.inertia).toBe(a.inertia);
    b.centroids.forEach((c, e) => expect(Array.from(c)).toEqual(Array.from(a.centroids[e])));
  });

  it("may differ between seeds, but each seed reproduces its own result", () => {
    const vectors = cloud(200, 8, 11);
    const runs = [0, 1, 2, 3, 4, 5].map((seed) =>
      clusterEpisodes(vectors, 5, { seed, restarts: 1 }),
    );
    const again = [0, 1, 2, 3, 4, 5].map((seed) =>
      clusterEpisodes(vectors, 5, { seed, restarts: 1 }),
    );
    runs.forEach((run, i) => expect(again[i]).toEqual(run));
    const distinct = new Set(runs.map((run) => run.assignments.join(",")));
    expect(distinct.size).toBeGreaterThan(1);
  });

  it("keeps the restart with the lowest inertia", () => {
    const vectors = cloud(200, 8, 11);
    const one = clusterEpisodes(vectors, 5, { seed: 9, restarts: 1 });
    const many = clusterEpisodes(vectors, 5, { seed: 9, restarts: 10 });
    // Restart 0 is the same in both, so ten restarts can only do as well or better.
    expect(many.inertia).toBeLessThanOrEqual(one.inertia);
  });

  it("reports the inertia of its partition and unit-norm centroids along the members' means", () => {
    const vectors = cloud(120, 12, 5);
    const { assignments, centroids, inertia, k } = clusterEpisodes(vectors, 4, { seed: 1 });
    let expected = 0;
    for (let e = 0; e < k; e++) {
      const members = vectors.filter((_, i) => assignments[i] === e);
      expect(members.length).toBeGreaterThan(0);
      const mean = new Float64Array(12);
      for (const v of members) v.forEach((x, d) => (mean[d] += x / members.length));
      expected += members.reduce((s, v) => s + v.reduce((t, x, d) => t + (x - mean[d]) ** 2, 0), 0);
      expect(Math.abs(Math.sqrt(dot(centroids[e], centroids[e])) - 1)).toBeLessThan(1e-6);
      expect(dot(centroids[e], mean) / Math.sqrt(dot(mean, mean))).toBeCloseTo(1, 6);
    }
    expect(inertia).toBeCloseTo(expected, 9);
  });

  it("clamps k to the number of vectors and says so", () => {
    const vectors = cloud(3, 8, 2);
    const result = clusterEpisodes(vectors, 4, { seed: 0 });
    expect(result.k).toBe(3);
    expect(result.centroids).toHaveLength(3);
    expect(result.assignments).toEqual([0, 1, 2]);
    expect(result.inertia).toBe(0);
    expect(result.clamped).toMatchObject({ requested: 4, reason: "fewer_vectors" });
    expect(result.clamped?.message).toMatch(/4 episodes asked for 3 windows/);
    // k equal to the number of vectors is not a clamp.
    expect(clusterEpisodes(vectors, 3, { seed: 0 }).clamped).toBeNull();
  });

  it("makes no episodes from no vectors", () => {
    const result = clusterEpisodes([], 4, { seed: 0 });
    expect(result).toMatchObject({
      assignments: [],
      centroids: [],
      inertia: 0,
      k: 0,
      clamped: { reason: "fewer_vectors" },
    });
  });

  it("handles duplicate vectors: clamps to the distinct ones, and duplicates share an episode", () => {
    const [a, b] = cloud(2, 8, 4);
    const vectors = [a, b, a, a, Float32Array.from(b), b];
    const result = clusterEpisodes(vectors, 4, { seed: 0 });
    expect(result.k).toBe(2);
    expect(result.clamped).toMatchObject({ requested: 4, reason: "fewer_distinct_vectors" });
    expect(result.assignments).toEqual([0, 1, 0, 0, 1, 1]);
    // All identical: one episode.
    expect(clusterEpisodes([a, a, a], 2, { seed: 0 })).toMatchObject({
      k: 1,
      assignments: [0, 0, 0],
    });
  });

  it("gives every episode members when points repeat but enough are distinct", () => {
    const { vectors } = blobs(4, 1, 32, 0, 8);
    const repeated = [...vectors, ...vectors, ...vectors];
    for (let seed = 0; seed < 10; seed++) {
      const result = clusterEpisodes(repeated, 4, { seed, restarts: 1 });
      expect(result.clamped).toBeNull();
      expect(result.inertia).toBeCloseTo(0, 12);
      expect(new Set(result.assignments).size).toBe(4);
      expect(result.assignments.slice(4)).toEqual([
        ...result.assignments.slice(0, 4),
        ...result.assignments.slice(0, 4),
      ]);
    }
  });

  it("rejects bad arguments", () => {
    const vectors = cloud(5, 4, 1);
    const bad = (f: () => unknown) =>
      expect(f).toThrow(expect.objectContaining({ code: "invalid_argument" }));
    bad(() => clusterEpisodes(vectors, 0));
    bad(() => clusterEpisodes(vectors, 1.5));
    bad(() => clusterEpisodes(vectors, 2, { seed: -1 }));
    bad(() => clusterEpisodes(vectors, 2, { restarts: 0 }));
    bad(() => clusterEpisodes([...vectors, new Float32Array(3).fill(1)], 2));
    bad(() => clusterEpisodes([...vectors, Float32Array.from([1, Number.NaN, 0, 0])], 2));
    bad(() => clusterEpisodes([...vectors, new Float32Array(4)], 2));
  });
});

describe("restartSeed", () => {
  it("is a deterministic uint32, different across restarts and seeds", () => {
    const seeds = new Set<number>();
    for (const seed of [0, 1, 2, 42, 2 ** 32, 2 ** 40 + 1]) {
      for (let r = 0; r < 10; r++) {
        const s = restartSeed(seed, r);
        expect(s).toBe(restartSeed(seed, r));
        expect(Number.isInteger(s) && s >= 0 && s < 2 ** 32).toBe(true);
        seeds.add(s);
      }
    }
    expect(seeds.size).toBe(60);
  });
});

describe("reseedEmpty", () => {
  it("moves an empty cluster to the point farthest from its mean, taken from a cluster with members to spare", () => {
    const data = [
      [0, 0],
      [1, 0],
      [10, 0], // mean of cluster 0 is (11/3, 0): this point is 6.33 away, the farthest
      [0, 5], // alone in cluster 1: it cannot be taken
    ];
    const centers = reseedEmpty(data, [0, 0, 0, 1], 3);
    expect(centers[0]).toEqual([11 / 3, 0]);
    expect(centers[1]).toEqual([0, 5]);
    expect(centers[2]).toEqual([10, 0]);
  });
});

describe("representatives", () => {
  it("picks, per episode, the members closest to the centroid by cosine, in index order", () => {
    for (const seed of [1, 2, 3]) {
      const vectors = cloud(90, 8, seed);
      const { assignments, centroids } = clusterEpisodes(vectors, 4, { seed });
      for (const nMedoid of [1, 3, 8]) {
        const reps = representatives(vectors, assignments, centroids, nMedoid);
        expect(reps).toHaveLength(centroids.length);
        reps.forEach((chosen, e) => {
          const members = assignments.flatMap((a, i) => (a === e ? [i] : []));
          const cos = (i: number) =>
            dot(vectors[i], centroids[e]) / Math.sqrt(dot(vectors[i], vectors[i]));
          expect(chosen).toHaveLength(Math.min(nMedoid, members.length));
          expect(chosen).toEqual([...chosen].sort((a, b) => a - b));
          for (const i of chosen) expect(assignments[i]).toBe(e);
          const worstChosen = Math.min(...chosen.map(cos));
          for (const i of members)
            if (!chosen.includes(i)) expect(cos(i)).toBeLessThanOrEqual(worstChosen + 1e-12);
        });
      }
    }
  });

  it("returns every member of a small episode, and breaks ties toward earlier windows", () => {
    const c = Float32Array.from([1, 0]);
    const near = Float32Array.from([0.9, Math.sqrt(1 - 0.81)]);
    const far = Float32Array.from([0, 1]);
    const vectors = [far, near, near, c, far];
    // Episode 0: windows 0, 1, 2, 4 around c; episode 1: window 3 alone.
    const reps = representatives(vectors, [0, 0, 0, 1, 0], [c, c], 2);
    expect(reps).toEqual([[1, 2], [3]]);
    expect(representatives(vectors, [0, 0, 0, 1, 0], [c, c], 3)).toEqual([[0, 1, 2], [3]]);
    expect(representatives(vectors, [0, 0, 0, 1, 0], [c, c], 10)).toEqual([[0, 1, 2, 4], [3]]);
  });

  it("takes a share of each episode's windows, at least one, in chronological order", () => {
    // Eight windows, six in episode 0 (closest to c first: 5, 4, 3, …), two in episode 1.
    const c = Float32Array.from([1, 0]);
    const vectors = [0.2, 0.3, 0.9, 0.4, 0.5, 0.6, 0.7, 0.8].map((x) =>
      l2Normalize(Float32Array.from([x, 1 - x])),
    );
    const assignments = [0, 0, 1, 0, 0, 0, 0, 1];
    expect(representatives(vectors, assignments, [c, c], "50%")).toEqual([[4, 5, 6], [2]]);
    expect(representatives(vectors, assignments, [c, c], "10%")).toEqual([[6], [2]]);
    expect(representatives(vectors, assignments, [c, c], "100%")).toEqual([
      [0, 1, 3, 4, 5, 6],
      [2, 7],
    ]);
  });

  it("rejects mismatched or out-of-range assignments and a bad nMedoid", () => {
    const v = [Float32Array.from([1, 0])];
    const bad = (f: () => unknown) =>
      expect(f).toThrow(expect.objectContaining({ code: "invalid_argument" }));
    bad(() => representatives(v, [0, 0], [v[0]], 1));
    bad(() => representatives(v, [1], [v[0]], 1));
    bad(() => representatives(v, [0], [v[0]], 0));
    bad(() => representatives(v, [0], [v[0]], "0%"));
    bad(() => representatives(v, [0], [v[0]], 1.5));
  });
});

import { describe, expect, it } from "vitest";
import { thrown } from "../testing";
import { nearestCentroid } from "./nearest-centroid";

describe("nearestCentroid", () => {
  it("picks the centroid with the highest cosine and returns every cosine", () => {
    const { index, cosines } = nearestCentroid(
      [1, 0, 0],
      [
        [0, 1, 0],
        [0.9, 0.1, 0],
        [-1, 0, 0],
      ],
    );
    expect(index).toBe(1);
    expect(cosines).toHaveLength(3);
    expect(cosines[0]).toBe(0);
    expect(cosines[1]).toBeCloseTo(0.9 / Math.hypot(0.9, 0.1), 12);
    expect(cosines[2]).toBe(-1);
  });

  it("compares directions, not lengths: centroids are normalised first", () => {
    // By dot product the long centroid would win; by direction the short one is closer.
    const query = new Float32Array([1, 0]);
    const centroids = [new Float32Array([10, 10]), new Float32Array([0.2, 0.01])];
    expect(nearestCentroid(query, centroids).index).toBe(1);
  });

  it("breaks ties towards the lower index", () => {
    const { index, cosines } = nearestCentroid(
      [1, 0],
      [
        [0, 2],
        [1, 1],
        [2, 2],
      ],
    );
    expect(cosines[1]).toBe(cosines[2]); // an exact tie
    expect(cosines[1]).toBeCloseTo(Math.SQRT1_2, 12);
    expect(index).toBe(1);
    expect(
      nearestCentroid(
        [0, 0],
        [
          [1, 0],
          [0, 1],
        ],
      ).index,
    ).toBe(0); // the zero query: all cosines 0
  });

  it("rejects no centroids, dimension mismatches and non-finite entries", () => {
    const cases: [() => unknown, string][] = [
      [() => nearestCentroid([1], []), "nearestCentroid needs at least one centroid"],
      [
        () =>
          nearestCentroid(
            [1, 0],
            [
              [1, 0],
              [1, 0, 0],
            ],
          ),
        "query and centroid 1 differ in dimension: 2 and 3",
      ],
      [
        () =>
          nearestCentroid(
            [1, 0],
            [
              [1, 0],
              [Number.NaN, 0],
            ],
          ),
        "centroid 1 has a non-finite entry at 0: NaN",
      ],
      [() => nearestCentroid([Number.NaN, 0], [[1, 0]]), "query has a non-finite entry at 0: NaN"],
    ];
    for (const [f, message] of cases) {
      const error = thrown(f);
      expect(error.code).toBe("invalid_argument");
      expect(error.message).toBe(message);
    }
  });
});

import { describe, expect, it } from "vitest";
import { thrown } from "../testing";
import { decodeWindowVectors, encodeWindowVectors } from "./window-vectors";

describe("window vectors", () => {
  it("stores each vector as int8 scaled to ±127, in base64", () => {
    const text = encodeWindowVectors([
      [0.6, -0.8],
      [1, 0],
      [0, 0],
    ]);
    expect(text).toBe("X4F/AAAA");
    expect(decodeWindowVectors(text, 2).map((v) => Array.from(v))).toEqual([
      [95, -127],
      [127, 0],
      [0, 0],
    ]);
  });

  it("keeps a 384-dimensional unit vector's direction to a cosine above 0.9999", () => {
    let seed = 1;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1;
    const v = Array.from({ length: 384 }, random);
    const [back] = decodeWindowVectors(encodeWindowVectors([v]), 384);
    let dot = 0,
      a = 0,
      b = 0;
    v.forEach((x, i) => ((dot += x * back[i]), (a += x * x), (b += back[i] * back[i])));
    expect(dot / Math.sqrt(a * b)).toBeGreaterThan(0.9999);
  });

  it("rejects ragged or non-finite vectors and text that is not whole vectors of base64", () => {
    const cases: [() => unknown, string][] = [
      [() => encodeWindowVectors([[1, 0], [1]]), "window vector 1 has 1 entries, vector 0 has 2"],
      [
        () => encodeWindowVectors([[1, Number.POSITIVE_INFINITY]]),
        "window vector 0 has a non-finite entry at 1: Infinity",
      ],
      [
        () => decodeWindowVectors("X4F/", 2),
        "window vectors hold 3 bytes, not a multiple of the dimension 2",
      ],
      [() => decodeWindowVectors("not base64!", 2), "window vectors are not base64"],
      [() => decodeWindowVectors("", 0), "dimension must be a positive integer, got 0"],
    ];
    for (const [f, message] of cases)
      expect(thrown(f)).toMatchObject({ code: "invalid_argument", message });
  });
});

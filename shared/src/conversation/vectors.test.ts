import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { thrown } from "../testing";
import { cosine, l2Normalize } from "./vectors";

describe("l2Normalize", () => {
  it("scales to unit length, into a new Float32Array", () => {
    const input = [3, 4];
    const out = l2Normalize(input);
    expect(out).toBeInstanceOf(Float32Array);
    expect(Array.from(out)).toEqual([Math.fround(0.6), Math.fround(0.8)]);
    expect(input).toEqual([3, 4]);
    const f = new Float32Array([0, -2, 0]);
    expect(Array.from(l2Normalize(f))).toEqual([0, -1, 0]);
    expect(Array.from(f)).toEqual([0, -2, 0]);
  });

  it("keeps the zero vector and rejects non-finite entries", () => {
    expect(Array.from(l2Normalize([0, 0]))).toEqual([0, 0]);
    expect(l2Normalize([])).toHaveLength(0);
    expect(thrown(() => l2Normalize([1, Number.NaN])).code).toBe("invalid_argument");
  });
});

describe("cosine", () => {
  it("measures the angle, whatever the lengths and array types", () => {
    expect(cosine([1, 0], [0, 3])).toBe(0);
    expect(cosine(new Float32Array([1, 2]), [2, 4])).toBeCloseTo(1, 12);
    expect(cosine([1, 0], [-5, 0])).toBe(-1);
    expect(cosine([1, 0], [1, 1])).toBeCloseTo(Math.SQRT1_2, 12);
    expect(cosine([0, 0], [1, 1])).toBe(0);
  });

  it("stays in [-1, 1] and is symmetric (property)", () => {
    const vector = fc.array(fc.float({ min: -1e3, max: 1e3, noNaN: true }), {
      minLength: 3,
      maxLength: 3,
    });
    fc.assert(
      fc.property(vector, vector, (a, b) => {
        const c = cosine(a, b);
        expect(c).toBeGreaterThanOrEqual(-1);
        expect(c).toBeLessThanOrEqual(1);
        expect(cosine(b, a)).toBe(c);
      }),
      { seed: 5 },
    );
  });

  it("rejects a dimension mismatch and non-finite entries", () => {
    const mismatch = thrown(() => cosine([1, 2], [1, 2, 3]));
    expect(mismatch.code).toBe("invalid_argument");
    expect(mismatch.message).toBe("vectors differ in dimension: 2 and 3");
    expect(thrown(() => cosine([1, Number.POSITIVE_INFINITY], [1, 2])).message).toContain(
      "first vector has a non-finite entry at 1",
    );
  });
});

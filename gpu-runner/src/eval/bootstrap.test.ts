import { describe, expect, it } from "vitest";
import { seededRandom } from "../runtime/sampling";
import { pairedBootstrap } from "./bootstrap";

describe("pairedBootstrap", () => {
  it("gives the mean difference inside its interval, and the same interval for the same seed", () => {
    const random = seededRandom(7);
    const b = Array.from({ length: 200 }, () => random());
    const a = b.map((x) => x + 0.1 + (random() - 0.5) * 0.2);
    const ci = pairedBootstrap(a, b);
    expect(ci.n).toBe(200);
    expect(ci.mean).toBeCloseTo(0.1, 1);
    expect(ci.low).toBeLessThan(ci.mean);
    expect(ci.high).toBeGreaterThan(ci.mean);
    expect(ci.low).toBeGreaterThan(0);
    expect(pairedBootstrap(a, b)).toEqual(ci);
  });

  it("puts 0 inside the interval of a difference that is only noise, and shrinks the interval with more pairs", () => {
    const random = seededRandom(3);
    const noise = (n: number) => Array.from({ length: n }, () => random() - 0.5);
    const small = pairedBootstrap(noise(50), Array(50).fill(0));
    const large = pairedBootstrap(noise(5000), Array(5000).fill(0), { resamples: 2000 });
    expect(large.low).toBeLessThan(0);
    expect(large.high).toBeGreaterThan(0);
    expect(large.high - large.low).toBeLessThan((small.high - small.low) / 3);
  });

  it("is exact for identical samples, empty for none, and refuses unpaired input", () => {
    expect(pairedBootstrap([1, 2, 3], [1, 2, 3])).toEqual({ mean: 0, low: 0, high: 0, n: 3 });
    expect(pairedBootstrap([], []).n).toBe(0);
    expect(() => pairedBootstrap([1], [1, 2])).toThrow();
  });
});

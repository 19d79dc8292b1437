import { describe, expect, it } from "vitest";
import { klDivergence, logProbs, logSoftmax } from "./log-probs";

describe("log-probabilities", () => {
  it("are the logits less their log-sum-exp, in float64, whatever their scale", () => {
    const p = logProbs(Float32Array.from([1000, 1000 + Math.log(3)]));
    expect(Array.from(logSoftmax(p))).toEqual([
      // 1000 + ln 3 as a float32 is off by up to 3e-5
      expect.closeTo(Math.log(1 / 4), 4),
      expect.closeTo(Math.log(3 / 4), 4),
    ]);
    const probabilities = logSoftmax(logProbs(Float32Array.from([0.5, -2, 3, 0])));
    expect(probabilities.reduce((n, v) => n + Math.exp(v), 0)).toBeCloseTo(1, 12);
  });

  it("KL(p ‖ q) is zero for one distribution, and Σ p log(p / q) for two", () => {
    const p = logProbs(Float32Array.from([0, Math.log(3)])); // (1/4, 3/4)
    const q = logProbs(Float32Array.from([0, 0])); // (1/2, 1/2)
    expect(klDivergence(p, p)).toBe(0);
    expect(klDivergence(p, q)).toBeCloseTo(0.25 * Math.log(0.5) + 0.75 * Math.log(1.5), 6);
    expect(() => klDivergence(p, logProbs(new Float32Array(3)))).toThrow(/different sizes/);
  });
});

import { describe, expect, it } from "vitest";
import { layerBudgets, officialBudgets } from "./layer-budgets";

describe("layerBudgets", () => {
  const s = [0, 0.02, 0.1, 0.3, 0.05, 0.2];
  const sum = (a: number[]) => a.reduce((x, y) => x + y, 0);

  it("sums to exactly L·M and never goes under the floor", () => {
    for (const M of [7, 64, 1024]) {
      for (const alpha of [0.5, 1, 2, 4]) {
        const b = layerBudgets(s, M, { alpha });
        expect(sum(b)).toBe(s.length * M);
        for (const v of b) expect(v).toBeGreaterThanOrEqual(Math.max(1, Math.floor(M / 4)));
        expect(b.every(Number.isInteger)).toBe(true);
      }
    }
  });

  it("gives more to more sensitive layers, in proportion to s^α where no floor binds", () => {
    const b = layerBudgets([1, 2, 3], 1000, { alpha: 1, floorFraction: 0 });
    expect(b).toEqual([500, 1000, 1500]);
    const sq = layerBudgets([1, 2, 3], 1400, { alpha: 2, floorFraction: 0.01 });
    expect(sq).toEqual([300, 1200, 2700]);
  });

  it("α = 0 and all-zero sensitivities give uniform budgets", () => {
    expect(layerBudgets(s, 1024, { alpha: 0 })).toEqual(Array(s.length).fill(1024));
    expect(layerBudgets([0, 0, 0], 10)).toEqual([10, 10, 10]);
  });

  it("pins starved layers at the floor and shares the rest", () => {
    const b = layerBudgets([0, 0, 1, 1], 100, { alpha: 2 });
    expect(b).toEqual([25, 25, 175, 175]);
  });

  it("rejects a bad budget, alpha or sensitivity", () => {
    expect(() => layerBudgets(s, 0)).toThrow(expect.objectContaining({ code: "invalid_argument" }));
    expect(() => layerBudgets(s, 10, { alpha: -1 })).toThrow(
      expect.objectContaining({ code: "invalid_argument" }),
    );
    expect(() => layerBudgets([NaN], 10)).toThrow(
      expect.objectContaining({ code: "invalid_argument" }),
    );
    expect(() => layerBudgets([], 10)).toThrow(
      expect.objectContaining({ code: "invalid_argument" }),
    );
  });
});

describe("officialBudgets (the authors' rule)", () => {
  it("weights (1 − min–max normalised similarity)^power, floors at M/4 after the split", () => {
    // σ̂ = [0, 0.5, 1]; weights [1, 0.5, 0] with power 1; shares of 300: [200, 100, 0] → floor 25.
    expect(officialBudgets([0.5, 0.75, 1], 100, 1)).toEqual([200, 100, 25]);
    // Power 2: weights [1, 0.25, 0]: [240, 60, 25]; the floor lifts the total above L·M.
    const b = officialBudgets([0.5, 0.75, 1], 100, 2);
    expect(b).toEqual([240, 60, 25]);
    expect(b.reduce((x, y) => x + y, 0)).toBeGreaterThan(300);
  });

  it("gives equal similarities equal budgets, and rejects bad input", () => {
    expect(officialBudgets([0.99, 0.99], 64)).toEqual([64, 64]);
    expect(() => officialBudgets([], 10)).toThrow(
      expect.objectContaining({ code: "invalid_argument" }),
    );
    expect(() => officialBudgets([1, NaN], 10)).toThrow(
      expect.objectContaining({ code: "invalid_argument" }),
    );
    expect(() => officialBudgets([1, 0.5], 0)).toThrow(
      expect.objectContaining({ code: "invalid_argument" }),
    );
  });
});

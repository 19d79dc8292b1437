import { describe, expect, it } from "vitest";
import { medoidCount, parseMedoidCount } from "./medoid-count";

describe("medoid counts", () => {
  it("parses counts and percentages", () => {
    expect(parseMedoidCount("3")).toBe(3);
    expect(parseMedoidCount(" 25% ")).toBe("25%");
    expect(parseMedoidCount("12.5%")).toBe("12.5%");
    for (const bad of ["0", "-1", "1.5", "0%", "101%", "%", "three", ""]) {
      expect(() => parseMedoidCount(bad), bad).toThrow(
        expect.objectContaining({ code: "invalid_argument" }),
      );
    }
  });

  it("gives at least one window and at most all of them", () => {
    expect(medoidCount(3, 10)).toBe(3);
    expect(medoidCount(8, 5)).toBe(5);
    expect(medoidCount("25%", 40)).toBe(10);
    expect(medoidCount("25%", 2)).toBe(1);
    expect(medoidCount("50%", 7)).toBe(4);
    expect(medoidCount("100%", 7)).toBe(7);
    expect(medoidCount("25%", 0)).toBe(0);
  });
});

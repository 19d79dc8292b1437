import { describe, expect, it } from "vitest";
import { BUILD_METHOD_REGISTRY, BUILD_METHODS, isBuildMethod } from "./methods";
import { BuildConfig } from "./runner-api";

describe("the build method registry", () => {
  it("names every method once, with its own label, and the runner API accepts exactly these", () => {
    expect(new Set(BUILD_METHODS).size).toBe(BUILD_METHODS.length);
    const labels = BUILD_METHODS.map((m) => BUILD_METHOD_REGISTRY[m].label);
    expect(labels.every((l) => l.trim() !== "")).toBe(true);
    expect(new Set(labels).size).toBe(labels.length);
    expect(BuildConfig.shape.method.unwrap().options).toEqual(BUILD_METHODS);
  });

  it("episodes and layer allocation only where there is a budget to divide", () => {
    for (const m of BUILD_METHODS) {
      const { episodic, budgeted, alloc } = BUILD_METHOD_REGISTRY[m];
      if (episodic || alloc) expect(budgeted, m).toBe(true);
    }
    expect(BUILD_METHODS.filter((m) => BUILD_METHOD_REGISTRY[m].episodic)).toEqual(["epicache"]);
    expect(BUILD_METHODS.filter((m) => !BUILD_METHOD_REGISTRY[m].budgeted)).toEqual(["full"]);
  });

  it("isBuildMethod knows own names only", () => {
    expect(BUILD_METHODS.every(isBuildMethod)).toBe(true);
    for (const s of ["recent", "epicache-noalloc", "toString", "__proto__", ""])
      expect(isBuildMethod(s), s).toBe(false);
  });
});

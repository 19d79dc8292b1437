import { describe, expect, it } from "vitest";
import { BUILD_METHOD_REGISTRY, BUILD_METHODS, isBuildMethod } from "@epicache/shared";
import {
  buildMethodOf,
  EVAL_METHOD_REGISTRY,
  EVAL_METHODS,
  evalMethodLabel,
  isEvalMethod,
  resolveEvalMethod,
} from "./eval-methods";

describe("the evaluation method registry", () => {
  it("every variant answers from a build method, and every build method is a variant of its own name without overrides", () => {
    for (const m of EVAL_METHODS)
      expect(isBuildMethod(EVAL_METHOD_REGISTRY[m].method), m).toBe(true);
    for (const m of BUILD_METHODS)
      expect(isEvalMethod(m) ? EVAL_METHOD_REGISTRY[m] : null, m).toEqual({ method: m });
  });

  it("names and labels are unique, so no two rows of a table read the same", () => {
    expect(new Set(EVAL_METHODS).size).toBe(EVAL_METHODS.length);
    const labels = EVAL_METHODS.map(evalMethodLabel);
    expect(labels.every((l) => l.trim() !== "")).toBe(true);
    expect(new Set(labels).size).toBe(labels.length);
    expect(evalMethodLabel("epicache")).toBe(BUILD_METHOD_REGISTRY.epicache.label);
  });

  it("a layer allocation is overridden only where there is a budget to allocate", () => {
    for (const m of EVAL_METHODS)
      if (EVAL_METHOD_REGISTRY[m].alloc !== undefined)
        expect(buildMethodOf(m).budgeted, m).toBe(true);
  });

  it("isEvalMethod knows own names only", () => {
    expect(EVAL_METHODS.every(isEvalMethod)).toBe(true);
    for (const s of ["turbo", "toString", "__proto__", ""]) expect(isEvalMethod(s), s).toBe(false);
  });

  it("reads options after a registry name, for sweeps, and refuses unknown ones", () => {
    expect(resolveEvalMethod("epicache:n-medoid=25%:alloc=output")).toEqual({
      method: "epicache",
      nMedoid: "25%",
      alloc: "output",
      label: "EpiCache (n-medoid 25%, alloc output)",
    });
    expect(resolveEvalMethod("epicache-noalloc:n-medoid=3")).toMatchObject({
      method: "epicache",
      alloc: "uniform",
      nMedoid: 3,
      label: "EpiCache (no alloc) (n-medoid 3)",
    });
    expect(buildMethodOf("snapkv:positions=original").budgeted).toBe(true);
    for (const s of [
      "epicache:n-medoid=0",
      "epicache:alloc=sideways",
      "epicache:nmedoid=3",
      "epicache:n-medoid",
      "turbo:n-medoid=3",
      "epicache:n-medoid=3=4",
    ]) {
      expect(isEvalMethod(s), s).toBe(false);
    }
  });
});

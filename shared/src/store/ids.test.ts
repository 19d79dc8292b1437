import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { isValidId, newVersionId, validateId } from "./ids";
import { activeKey, episodeKey, manifestKey, versionOfKey, versionPrefix } from "./keys";

describe("ids", () => {
  it("accepts plain ids", () => {
    for (const id of ["a", "conv-26", "T_1.x", "0", "a".repeat(64), "v20261128T113400123Z-3fa9c1"])
      expect(isValidId(id)).toBe(true);
  });

  it("rejects what could climb, separate, hide or overflow", () => {
    for (const id of [
      "",
      ".",
      "..",
      "a..b",
      "../x",
      "a/b",
      "a\\b",
      "-a",
      ".a",
      "a b",
      "a\u0000",
      "a\n",
      "ｃonv",
      "cоnv",
      "a".repeat(65),
      "%2e%2e",
    ]) {
      expect(isValidId(id), JSON.stringify(id)).toBe(false);
    }
    expect(isValidId(3)).toBe(false);
    expect(() => validateId("tenant", "a/b")).toThrow(
      expect.objectContaining({
        code: "invalid_argument",
        message: expect.stringContaining("tenant id"),
      }),
    );
  });

  it("no valid id makes a key that leaves its conversation's prefix (fuzzed)", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 70 }), fc.string({ maxLength: 70 }), (c, v) => {
        if (!isValidId(c) || !isValidId(v)) return;
        const key = manifestKey("t", c, v);
        const segments = key.split("/");
        expect(segments).toEqual([
          "tenants",
          "t",
          "conversations",
          c,
          "versions",
          v,
          "manifest.json",
        ]);
        expect(segments.every((s) => s !== "." && s !== ".." && s !== "")).toBe(true);
      }),
    );
  });

  it("builds the keys of docs/design.md §3 and reads the version back", () => {
    expect(activeKey("t1", "c1")).toBe("tenants/t1/conversations/c1/active.json");
    expect(episodeKey("t1", "c1", "v1", 3)).toBe(
      "tenants/t1/conversations/c1/versions/v1/episode-3.kvc",
    );
    expect(
      versionOfKey(
        "tenants/t1/conversations/c1/",
        `${versionPrefix("t1", "c1", "v1")}manifest.json`,
      ),
    ).toBe("v1");
    expect(versionOfKey("tenants/t1/conversations/c1/", activeKey("t1", "c1"))).toBeNull();
    expect(() => episodeKey("t1", "c1", "v1", -1)).toThrow(
      expect.objectContaining({ code: "invalid_argument" }),
    );
  });

  it("version ids sort by time and are valid ids", () => {
    const a = newVersionId(new Date("2026-01-02T03:04:05.006Z"), () => 0.5);
    expect(a).toBe("v20260102T030405006Z-800000");
    expect(isValidId(a)).toBe(true);
    expect(newVersionId(new Date("2026-01-02T03:04:05.007Z")) > a).toBe(true);
  });
});

import { describe, expect, it } from "vitest";
import { BM25_DEFAULTS, bm25Scores } from "./bm25";

describe("bm25Scores", () => {
  it("scores by the textbook formula: Lucene's idf, k1 = 1.2, b = 0.75", () => {
    expect(BM25_DEFAULTS).toEqual({ k1: 1.2, b: 0.75 });
    const scores = bm25Scores(["dog", "vet"], [["dog", "park"], ["vet", "dog", "bill"], ["cat"]]);
    // N = 3, average length 2; "dog" in 2 documents, "vet" in 1.
    const idfDog = Math.log(1 + (3 - 2 + 0.5) / (2 + 0.5));
    const idfVet = Math.log(1 + (3 - 1 + 0.5) / (1 + 0.5));
    const tf = (f: number, length: number) =>
      (f * 2.2) / (f + 1.2 * (1 - 0.75 + (0.75 * length) / 2));
    expect(scores[0]).toBeCloseTo(idfDog * tf(1, 2), 12);
    expect(scores[1]).toBeCloseTo(idfDog * tf(1, 3) + idfVet * tf(1, 3), 12);
    expect(scores[2]).toBe(0);
  });

  it("favours a rare term over a common one", () => {
    // "said" is in every window, "pottery" in one: each once, in windows of equal length.
    const windows = [
      ["caroline", "said", "adoption"],
      ["melanie", "said", "pottery"],
      ["caroline", "said", "group"],
    ];
    const scores = bm25Scores(["said", "pottery"], windows);
    expect(scores[1]).toBeGreaterThan(scores[0]);
    expect(scores[0]).toBe(scores[2]);
    // A term in every window still counts a little (Lucene's idf is never negative).
    expect(scores[0]).toBeGreaterThan(0);
  });

  it("discounts long windows: the same term once scores more in a short window, and alike with b = 0", () => {
    const windows = [
      ["jazz", "band", "stage", "crowd", "night", "ticket"],
      ["jazz", "band"],
      ["rain"],
    ];
    const scores = bm25Scores(["jazz"], windows);
    expect(scores[1]).toBeGreaterThan(scores[0]);
    const flat = bm25Scores(["jazz"], windows, { k1: 1.2, b: 0 });
    expect(flat[1]).toBe(flat[0]);
  });

  it("counts repeats in a window with diminishing returns, and repeats in the query once", () => {
    const windows = [["dog"], ["dog", "dog"], ["cat", "cat"], ["fish", "fish"]];
    const scores = bm25Scores(["dog"], windows);
    // Equal lengths would make two repeats worth 2.2 · 2 / 3.2 = 1.375 times one; here the second
    // window is also longer than the first, and still scores more.
    expect(scores[1]).toBeGreaterThan(scores[0]);
    expect(scores[1]).toBeLessThan(2 * scores[0]);
    expect(Array.from(bm25Scores(["dog", "dog", "dog"], windows))).toEqual(Array.from(scores));
  });

  it("scores 0 without query terms or without matches", () => {
    expect(Array.from(bm25Scores([], [["dog"]]))).toEqual([0]);
    expect(Array.from(bm25Scores(["dog"], [[], ["cat"]]))).toEqual([0, 0]);
    expect(Array.from(bm25Scores(["dog"], []))).toEqual([]);
  });
});

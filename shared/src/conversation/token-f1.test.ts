import { describe, expect, it } from "vitest";
import { normalizeAnswer, tokenF1 } from "./token-f1";

describe("normalizeAnswer", () => {
  it("lower-cases, strips punctuation and articles, collapses white space", () => {
    expect(normalizeAnswer("The  Eiffel Tower!")).toBe("eiffel tower");
    expect(normalizeAnswer("7 May, 2023")).toBe("7 may 2023");
    expect(normalizeAnswer("  A cat,\tan owl and THE dog. ")).toBe("cat owl and dog");
    expect(normalizeAnswer("self-care")).toBe("selfcare"); // deleted, not replaced by a space
    expect(normalizeAnswer("theatre, another, anthem")).toBe("theatre another anthem"); // whole words only
    expect(normalizeAnswer("Kate’s “art” — Kate's")).toBe("kates art kates"); // Unicode punctuation too
    expect(normalizeAnswer("$5 + 10% = ~")).toBe("5 10");
  });
});

describe("tokenF1", () => {
  it("scores token overlap as SQuAD does", () => {
    expect(tokenF1("The Eiffel Tower", "eiffel tower")).toBe(1);
    expect(tokenF1("in Paris, France", "Paris")).toBe(0.5); // p = 1/3, r = 1
    expect(tokenF1("Paris", "Paris France")).toBeCloseTo(2 / 3, 12); // p = 1, r = 1/2
    expect(tokenF1("London", "Paris")).toBe(0);
    expect(tokenF1("7 May 2023", "7 May, 2023")).toBe(1);
  });

  it("counts repeated tokens with multiplicity", () => {
    expect(tokenF1("red red blue", "red blue blue")).toBeCloseTo(2 / 3, 12); // common = 2 (red, blue)
    expect(tokenF1("red red", "red")).toBeCloseTo(2 / 3, 12); // p = 1/2, r = 1
  });

  it("scores empty answers: both empty 1, one empty 0", () => {
    expect(tokenF1("", "")).toBe(1);
    expect(tokenF1("The.", "a")).toBe(1); // both normalise to nothing
    expect(tokenF1("", "Paris")).toBe(0);
    expect(tokenF1("Paris", "!")).toBe(0);
  });
});

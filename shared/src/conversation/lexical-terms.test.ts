import { describe, expect, it } from "vitest";
import { lexicalTerms, STOP_WORDS } from "./lexical-terms";

describe("lexicalTerms", () => {
  it("lower-cases, splits on everything but ASCII letters and digits, and keeps repeats in order", () => {
    expect(lexicalTerms('Caroline said, "Hey Mel!"\nMelanie said, "Hey Caroline!"')).toEqual([
      "caroline",
      "said",
      "hey",
      "mel",
      "melanie",
      "said",
      "hey",
      "caroline",
    ]);
    expect(lexicalTerms("LGBTQ support-group, 7 May 2023")).toEqual([
      "lgbtq",
      "support",
      "group",
      "may",
      "2023",
    ]);
  });

  it("drops one-character terms and stop words", () => {
    expect(lexicalTerms("What did I do with a 5 in it?")).toEqual([]);
    expect(lexicalTerms("When did she go to the park?")).toEqual(["go", "park"]);
    for (const w of STOP_WORDS) expect(lexicalTerms(w)).toEqual([]);
  });

  it("strips one suffix of ing, ed, es or s, so that forms of a word meet", () => {
    expect(lexicalTerms("hiking hiked hikes")).toEqual(["hik", "hik", "hik"]);
    expect(lexicalTerms("kids painting")).toEqual(["kid", "paint"]);
    // Crude: the last matching suffix only, and words that merely end that way lose it too.
    expect(lexicalTerms("things news bus")).toEqual(["thing", "new", "bu"]);
    // A term the strip would empty is dropped.
    expect(lexicalTerms("es ed ing")).toEqual([]);
  });

  it("gives no terms for text outside ASCII letters and digits", () => {
    expect(lexicalTerms("¿Dónde está?")).toEqual(["nde", "est"]);
    expect(lexicalTerms("東京に行った")).toEqual([]);
  });
});

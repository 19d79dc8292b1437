import { describe, expect, it } from "vitest";
import { thrown } from "../testing";
import { readQaItems } from "./qa-items";

describe("readQaItems", () => {
  it("reads answers, adversarial answers, evidence lists and categories", () => {
    const items = readQaItems(
      [
        { question: "q1", answer: "a", evidence: ["D1:1"], category: 1 },
        {
          question: "q2",
          answer: 2,
          evidence: ["D8:6; D9:17", " D2:1 ,D2:2 ", ""],
          category: "temporal",
        },
        { question: "q3", adversarial_answer: "trap", category: 5 }, // no evidence: empty
        { question: "q4", answer: "No", adversarial_answer: "Yes", evidence: [], category: 5 },
        { question: "q5", answer: null, adversarial_answer: "trap", evidence: null, category: 5 },
      ],
      "src",
      "qa",
    );
    expect(items).toEqual([
      { question: "q1", answer: "a", evidence: ["D1:1"], category: 1 },
      {
        question: "q2",
        answer: "2",
        evidence: ["D8:6", "D9:17", "D2:1", "D2:2"],
        category: "temporal",
      },
      { question: "q3", answer: "trap", evidence: [], category: 5, adversarial: true },
      { question: "q4", answer: "No", evidence: [], category: 5 },
      { question: "q5", answer: "trap", evidence: [], category: 5, adversarial: true },
    ]);
    expect(readQaItems(undefined, "src", "qa")).toEqual([]);
  });

  it("names the place of a malformed item", () => {
    const cases: [unknown, string][] = [
      [{}, "src: qa must be an array, got an object"],
      [[3], "src: qa[0] must be an object, got a number"],
      [[{ answer: "a", category: 1 }], "src: qa[0].question is missing (expected a string)"],
      [
        [{ question: "q", answer: "a", category: null }],
        "src: qa[0].category must be a number or a string, got null",
      ],
      [
        [{ question: "q", answer: true, category: 1 }],
        "src: qa[0].answer must be a string or a number, got a boolean",
      ],
      [
        [{ question: "q", category: 1 }],
        "src: qa[0].answer is missing (and there is no adversarial_answer)",
      ],
      [
        [{ question: "q", adversarial_answer: 1, category: 5 }],
        "src: qa[0].adversarial_answer must be a string, got a number",
      ],
      [
        [{ question: "q", answer: "a", evidence: "D1:1", category: 1 }],
        "src: qa[0].evidence must be an array, got a string",
      ],
    ];
    for (const [value, message] of cases) {
      const error = thrown(() => readQaItems(value, "src", "qa"));
      expect(error.code).toBe("conversation_invalid");
      expect(error.message).toBe(message);
    }
  });
});

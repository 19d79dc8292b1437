import type { QaItem } from "./conversation";
import {
  childPath,
  describeJson,
  expectArray,
  expectObject,
  fail,
  requiredString,
} from "./json-fields";

/**
 * The QA items of a benchmark file (LoCoMo and REALTALK share the shape `{question, answer |
 * adversarial_answer, evidence, category}`). An absent or null list is no items.
 *
 * @example
 * ```ts
 * readQaItems([{ question: "When?", answer: 2022, evidence: ["D8:6; D9:17"], category: 2 }], "LoCoMo JSON", "qa");
 * // [{ question: "When?", answer: "2022", evidence: ["D8:6", "D9:17"], category: 2 }]
 * ```
 */
export function readQaItems(value: unknown, source: string, path: string): QaItem[] {
  if (value === undefined || value === null) return [];
  return expectArray(value, source, path).map((raw, i) =>
    readQaItem(raw, source, childPath(path, i)),
  );
}

function readQaItem(raw: unknown, source: string, path: string): QaItem {
  const item = expectObject(raw, source, path);
  const question = requiredString(item, "question", source, path);
  const category = item.category;
  if (typeof category !== "number" && typeof category !== "string") {
    const where = childPath(path, "category");
    if (category === undefined) fail(source, where, "is missing (expected a number or a string)");
    fail(source, where, `must be a number or a string, got ${describeJson(category)}`);
  }
  const evidence = readEvidence(item.evidence, source, childPath(path, "evidence"));

  const answer = item.answer;
  if (typeof answer === "string") return { question, answer, evidence, category };
  if (typeof answer === "number") return { question, answer: String(answer), evidence, category };
  if (answer !== undefined && answer !== null) {
    fail(
      source,
      childPath(path, "answer"),
      `must be a string or a number, got ${describeJson(answer)}`,
    );
  }
  // LoCoMo category 5: no gold answer, only the tempting wrong one.
  const adversarial = item.adversarial_answer;
  if (typeof adversarial === "string")
    return { question, answer: adversarial, evidence, category, adversarial: true };
  if (adversarial === undefined || adversarial === null) {
    fail(source, childPath(path, "answer"), "is missing (and there is no adversarial_answer)");
  }
  return fail(
    source,
    childPath(path, "adversarial_answer"),
    `must be a string, got ${describeJson(adversarial)}`,
  );
}

function readEvidence(value: unknown, source: string, path: string): string[] {
  if (value === undefined || value === null) return [];
  const ids: string[] = [];
  expectArray(value, source, path).forEach((entry, i) => {
    if (typeof entry !== "string")
      fail(source, childPath(path, i), `must be a string, got ${describeJson(entry)}`);
    // LoCoMo writes some pairs as one entry: "D8:6; D9:17".
    for (const id of entry.split(/[\s;,]+/)) if (id !== "") ids.push(id);
  });
  return ids;
}

/**
 * Which benchmark questions an evaluation asks, and under which category name: LoCoMo's adversarial
 * category (5) is left out, as in the paper; a question is asked only when every turn of its
 * evidence lies in the sessions kept in the context.
 */
import type { Conversation, QaItem } from "@epicache/shared";

/** The benchmarks an evaluation reads. */
export const DATASETS = ["locomo", "realtalk"] as const;
export type Dataset = (typeof DATASETS)[number];

const LOCOMO = ["multi-hop", "temporal", "open-domain", "single-hop", "adversarial"];
const REALTALK = ["multi-hop", "temporal", "commonsense"];

/** The category's name (LoCoMo 1–5, REALTALK 1–3); other values are kept as written. */
export function categoryName(dataset: Dataset, category: number | string): string {
  const names = dataset === "locomo" ? LOCOMO : REALTALK;
  return typeof category === "number" && names[category - 1]
    ? names[category - 1]
    : String(category);
}

/**
 * Evidence ids as the turn ids they name: trailing punctuation dropped (`D5:3.`), ranges within a
 * session expanded (`D12:3-D12:5` → D12:3, D12:4, D12:5). Anything else is returned as is.
 */
export function evidenceTurns(id: string): string[] {
  const clean = id.trim().replace(/[.,;]+$/, "");
  const range = /^D(\d+):(\d+)\s*-\s*D?(\d+)?:?(\d+)$/.exec(clean);
  if (range) {
    const [session, from, toSession, to] = [
      range[1],
      Number(range[2]),
      range[3] ?? range[1],
      Number(range[4]),
    ];
    if (toSession === session && to >= from && to - from < 200)
      return Array.from({ length: to - from + 1 }, (_, i) => `D${session}:${from + i}`);
  }
  return [clean];
}

export interface EvalQuestion {
  question: string;
  answer: string;
  category: string;
  /** Turn ids of the evidence. */
  evidence: string[];
}

export interface QuestionSelection {
  questions: EvalQuestion[];
  /** Left out: adversarial, evidence outside the kept sessions (or naming no turn), no evidence. */
  skipped: { adversarial: number; outside: number; noEvidence: number };
}

export function selectQuestions(
  qa: readonly QaItem[],
  kept: Conversation,
  dataset: Dataset,
): QuestionSelection {
  const turns = new Set(kept.sessions.flatMap((s) => s.turns.map((t) => t.id)));
  const skipped = { adversarial: 0, outside: 0, noEvidence: 0 };
  const questions: EvalQuestion[] = [];
  for (const item of qa) {
    const category = categoryName(dataset, item.category);
    if (category === "adversarial" || item.adversarial) {
      skipped.adversarial++;
      continue;
    }
    const evidence = item.evidence.flatMap(evidenceTurns);
    if (evidence.length === 0) {
      skipped.noEvidence++;
      continue;
    }
    if (!evidence.every((id) => turns.has(id))) {
      skipped.outside++;
      continue;
    }
    questions.push({ question: item.question, answer: item.answer, category, evidence });
  }
  return { questions, skipped };
}

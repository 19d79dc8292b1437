/**
 * Reports of an evaluation, from the rows of its results.jsonl: conversations combined
 * ({@link aggregate}), Markdown tables in the layout of the EpiCache paper ({@link renderTable}) and an
 * SVG plot of a metric against the KV budget ({@link renderPlot}). Pure functions: strings in, strings
 * out; reading and writing files is the caller's.
 */
import { EpicacheError } from "@epicache/shared";
import { pairedBootstrap, type PairedInterval } from "./bootstrap";
import {
  baseEvalMethod,
  buildMethodOf,
  EVAL_METHODS,
  evalMethodLabel,
  isEvalMethod,
} from "./eval-methods";

/** One line of an evaluation's results.jsonl: one method at one budget on one conversation's category. */
export interface ResultRow {
  /** An evaluation method: "full", "epicache", "epicache-noalloc", "recent", … (EVAL_METHODS). */
  method: string;
  /** Entries per KV head; null for "full". */
  budget: number | null;
  conversation: string;
  /** "multi-hop", "temporal", "open-domain", "single-hop", "commonsense", …, or "all" (every question). */
  category: string;
  questions: number;
  /** Mean token F1 in [0, 1]. */
  f1: number;
  /**
   * Mean per-token KL(full ‖ method), ≥ 0; null where the full cache is no reference (a history
   * longer than the model's window).
   */
  kl: number | null;
  /**
   * Mean per-token KL(full ‖ method) along the full cache's own greedy answer (the paper's fidelity);
   * null without a full-cache reference (absent in older rows).
   */
  klGreedy?: number | null;
  /** Share of questions routed to the episode holding their evidence, in [0, 1]; null when not routed. */
  routingHit: number | null;
  /**
   * Mean share of the evidence turns' entries the answering cache kept, over layers and heads
   * (eval/evidence.ts); absent in older rows.
   */
  evidenceKept?: number | null;
  /** 95% paired bootstrap interval of this row's F1 and KL minus EpiCache's at the same budget, over the same questions. */
  f1Ci?: [number, number] | null;
  klCi?: [number, number] | null;
  entries: number;
  compression: number;
  buildSeconds: number;
  decodeMsPerToken: number;
  peakRssBytes: number;
  /**
   * The whole job (build, answers, KL), in wall seconds and in the process's CPU seconds (user +
   * system, every thread: the work done, which a machine shared with other jobs does not inflate as
   * much); absent in older rows.
   */
  jobSeconds?: number;
  jobCpuSeconds?: number;
  /** The largest position any attention of the job used, and the model's trained window (absent in older rows). */
  maxPosition?: number;
  window?: number;
  /** "whole" or "cut" (absent in older rows: cut). */
  history?: string;
}

/**
 * Rows of one (method, budget, category) combined over conversations (see {@link aggregate}):
 * questions summed; f1, kl and routingHit question-weighted (routingHit over the rows that have one);
 * entries, compression and the timings plain means; peakRssBytes the max.
 */
export interface AggregateRow extends Omit<ResultRow, "conversation"> {
  /** Distinct conversations combined. */
  conversations: number;
}

/** Options of {@link renderTable} and {@link renderPlot}. */
export interface ReportOptions {
  /** A heading above the tables / the plot's title. */
  title?: string;
}

/** The metric {@link renderPlot} draws: F1 (drawn ×100) or KL(full ‖ method). */
export type PlotMetric = "f1" | "kl";

const FULL = "full";
const ALL = "all";
const MISSING = "–";
/** Methods in the paper's order (the registry's), those without a budget first; others follow alphabetically. */
const METHOD_ORDER: readonly string[] = [
  ...EVAL_METHODS.filter((m) => !buildMethodOf(m).budgeted),
  ...EVAL_METHODS.filter((m) => buildMethodOf(m).budgeted),
];
/** LoCoMo's categories, then REALTALK's; others follow alphabetically, "all" last. */
const CATEGORY_ORDER = [
  "multi-hop",
  "temporal",
  "open-domain",
  "single-hop",
  "commonsense",
  "evidence-old",
  "evidence-recent",
];

/**
 * The name a method goes by in tables and legends ("Full KV", "EpiCache", "SnapKV", …); an unknown
 * method keeps its own name.
 *
 * @example
 * ```ts
 * methodLabel("kvzip"); // "KVzip"
 * methodLabel("mine"); // "mine"
 * ```
 */
export function methodLabel(method: string): string {
  return isEvalMethod(method) ? evalMethodLabel(method) : method;
}

/**
 * Combines conversations: one row per (method, budget, category) with question-weighted means of
 * f1, kl and routingHit (null if every row's is null), the sum of questions, plain means of entries,
 * compression, buildSeconds and decodeMsPerToken, and the max of peakRssBytes. A group whose rows have
 * no questions at all gets plain means instead of weighted ones. Sorted by method (paper order), budget
 * (null first, then ascending) and category (LoCoMo's, REALTALK's, others alphabetically, "all" last).
 *
 * @throws EpicacheError `invalid_argument` when a row's question count is negative or not finite.
 *
 * @example
 * ```ts
 * const [row] = aggregate([
 *   { ...base, conversation: "a", questions: 30, f1: 0.5 },
 *   { ...base, conversation: "b", questions: 10, f1: 0.1 },
 * ]);
 * row.f1; // 0.4
 * row.questions; // 40
 * ```
 */
export function aggregate(rows: readonly ResultRow[]): AggregateRow[] {
  const groups = new Map<string, ResultRow[]>();
  for (const row of rows) {
    if (!Number.isFinite(row.questions) || row.questions < 0) {
      throw new EpicacheError(
        "invalid_argument",
        `result row ${row.method}/${row.budget}/${row.conversation}/${row.category}: questions ${row.questions} is not a count`,
      );
    }
    const key = JSON.stringify([row.method, row.budget, row.category]);
    const group = groups.get(key);
    if (group) group.push(row);
    else groups.set(key, [row]);
  }
  const out: AggregateRow[] = [];
  for (const group of groups.values()) {
    const { method, budget, category } = group[0];
    const routed = group.filter(
      (r): r is ResultRow & { routingHit: number } => r.routingHit !== null,
    );
    out.push({
      method,
      budget,
      category,
      conversations: new Set(group.map((r) => r.conversation)).size,
      questions: sum(group.map((r) => r.questions)),
      f1: weightedMean(group, (r) => r.f1),
      kl: group.some((r) => r.kl === null) ? null : weightedMean(group, (r) => r.kl ?? 0),
      routingHit: routed.length === 0 ? null : weightedMean(routed, (r) => r.routingHit),
      entries: mean(group.map((r) => r.entries)),
      compression: mean(group.map((r) => r.compression)),
      buildSeconds: mean(group.map((r) => r.buildSeconds)),
      decodeMsPerToken: mean(group.map((r) => r.decodeMsPerToken)),
      peakRssBytes: Math.max(...group.map((r) => r.peakRssBytes)),
    });
  }
  return out.sort(
    (a, b) =>
      compareMethods(a.method, b.method) ||
      compareBudgets(a.budget, b.budget) ||
      compareCategories(a.category, b.category),
  );
}

/**
 * Markdown tables in the layout of the EpiCache paper: F1 (×100, one decimal) and KL(full ‖ method)
 * (three decimals), rows method × budget (Full KV first with budget "—", then the paper's method order,
 * budgets ascending), one column per category present (LoCoMo's, then REALTALK's, then others
 * alphabetically) and "Avg", the conversations' question-weighted "all" category. A header line gives
 * the question count per category (a range when methods saw different counts). A third table gives per
 * method × budget the routing hit (%), compression (×), build seconds and decode ms/token, from each
 * conversation's "all" row (its category rows combined where it has none). Missing cells are "–".
 *
 * @example
 * ```ts
 * renderTable(rows, { title: "LoCoMo, Qwen2.5-0.5B" });
 * // ## LoCoMo, Qwen2.5-0.5B
 * //
 * // Questions: multi-hop 282 · temporal 321 · … · all 1540
 * //
 * // ### F1 (×100)
 * //
 * // | Method   | Budget | multi-hop | … | Avg  |
 * // | :------- | -----: | --------: | … | ---: |
 * // | Full KV  |      — |      45.2 | … | 51.0 |
 * // | EpiCache |   2048 |      41.9 | … | 47.3 |
 * ```
 */
export function renderTable(rows: readonly ResultRow[], opts: ReportOptions = {}): string {
  const agg = aggregate(rows);
  const categories = [...new Set(agg.map((r) => r.category))]
    .filter((c) => c !== ALL)
    .sort(compareCategories);
  const configs = methodBudgets(agg);
  const cell = new Map(agg.map((r) => [cellKey(r.method, r.budget, r.category), r]));
  const lead = (m: string, b: number | null): string[] => [
    mdEscape(methodLabel(m)),
    b === null ? "—" : String(b),
  ];

  const metricTable = (format: (r: AggregateRow) => string): string => {
    const header = ["Method", "Budget", ...categories.map(mdEscape), "Avg"];
    const body = configs.map(({ method, budget }) => [
      ...lead(method, budget),
      ...[...categories, ALL].map((c) => {
        const r = cell.get(cellKey(method, budget, c));
        return r ? format(r) : MISSING;
      }),
    ]);
    return markdownTable(header, body);
  };

  const costs = aggregate(costRows(rows));
  const costTable = markdownTable(
    ["Method", "Budget", "Routing hit (%)", "Compression (×)", "Build (s)", "Decode (ms/token)"],
    costs.map((r) => [
      ...lead(r.method, r.budget),
      r.routingHit === null ? MISSING : fixed(r.routingHit * 100, 1),
      Number.isFinite(r.compression) ? `${fixed(r.compression, 1)}×` : MISSING,
      fixed(r.buildSeconds, 1),
      fixed(r.decodeMsPerToken, 2),
    ]),
  );

  const parts: string[] = [];
  if (opts.title !== undefined) parts.push(`## ${mdEscape(opts.title)}`);
  parts.push(
    `Questions: ${[...categories, ALL].map((c) => `${mdEscape(c)} ${questionCount(agg, c)}`).join(" · ")}`,
  );
  parts.push(
    "### F1 (×100)",
    metricTable((r) => fixed(r.f1 * 100, 1)),
  );
  if (agg.some((r) => r.kl !== null))
    parts.push(
      "### KL(full ‖ method)",
      metricTable((r) => (r.kl === null ? MISSING : fixed(r.kl, 3))),
    );
  parts.push("### Routing and cost", costTable);
  return `${parts.join("\n\n")}\n`;
}

/** One line of an evaluation's questions.jsonl: one question answered by one method at one budget. */
export interface QuestionRow {
  conversation: string;
  method: string;
  budget: number | null;
  /** Index of the question among its conversation's selected questions. */
  question: number;
  category: string;
  /** "evidence-old" (every evidence turn before the recent window) or "evidence-recent". */
  age: string;
  f1: number;
  kl: number | null;
  /** KL along the full cache's greedy answer, and the share of the evidence kept (absent in older lines). */
  klGreedy?: number | null;
  evidenceKept?: number | null;
  hit: number | null;
  /**
   * EpiCache only: per routing rule (centroid, window, vote-3, vote-5, vote-8, and lexical in lines
   * written since it exists), 1 if it would have picked an episode holding the evidence.
   */
  hits?: Record<string, number>;
  routed: number;
  answer: string;
}

/**
 * The lines of a questions.jsonl, one row per question of each method, budget and conversation: a
 * job stopped while answering is answered again from its first question when the evaluation resumes,
 * and where a file holds a question twice (written before a resumed job's earlier lines were dropped)
 * the later line stands.
 */
export function parseQuestionRows(text: string): QuestionRow[] {
  const byKey = new Map<string, QuestionRow>();
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    const row = JSON.parse(line) as QuestionRow;
    const key = JSON.stringify([row.conversation, row.method, row.budget, row.question]);
    byKey.delete(key);
    byKey.set(key, row);
  }
  return [...byKey.values()];
}

/** The per-question measures a paired comparison can take. */
export type PairedMetric = "f1" | "kl" | "klGreedy";

/**
 * The paired difference of `metric` between `method` at `budget` and `reference` at the same budget,
 * over the questions of `conversation` (all when null) in `category` ("all", a question category or an
 * evidence age) that both answered with a value; null when none did.
 */
export function pairedDifference(
  rows: readonly QuestionRow[],
  metric: PairedMetric,
  sel: { method: string; budget: number | null; conversation: string | null; category: string },
  reference: string,
): PairedInterval | null {
  const key = (r: QuestionRow) => `${r.conversation}\t${r.question}`;
  const inScope = (r: QuestionRow) =>
    r.budget === sel.budget &&
    (sel.conversation === null || r.conversation === sel.conversation) &&
    (sel.category === ALL || r.category === sel.category || r.age === sel.category);
  const value = (r: QuestionRow) => r[metric];
  const base = new Map(
    rows
      .filter((r) => r.method === reference && inScope(r) && typeof value(r) === "number")
      .map((r) => [key(r), value(r) as number]),
  );
  const pairs = rows.filter(
    (r) =>
      r.method === sel.method && inScope(r) && typeof value(r) === "number" && base.has(key(r)),
  );
  if (pairs.length === 0) return null;
  return pairedBootstrap(
    pairs.map((r) => value(r) as number),
    pairs.map((r) => base.get(key(r)) as number),
  );
}

/**
 * Result rows with `f1Ci` and `klCi`: the 95% interval of each row's difference against `reference`
 * (EpiCache) at its budget, over the row's questions. The reference's own rows, rows without a budget
 * and rows without pairs get null.
 */
export function withIntervals(
  rows: readonly ResultRow[],
  questions: readonly QuestionRow[],
  reference = "epicache",
): ResultRow[] {
  const ci = (d: PairedInterval | null): [number, number] | null => (d ? [d.low, d.high] : null);
  return rows.map((r) => {
    if (r.method === reference || r.budget === null) return { ...r, f1Ci: null, klCi: null };
    const sel = {
      method: r.method,
      budget: r.budget,
      conversation: r.conversation,
      category: r.category,
    };
    return {
      ...r,
      f1Ci: ci(pairedDifference(questions, "f1", sel, reference)),
      klCi: ci(pairedDifference(questions, "kl", sel, reference)),
    };
  });
}

/**
 * Per method × budget, over every conversation's questions: F1, KL (gold-forced) and KL along the
 * full cache's greedy answer, each as the mean and the paired difference against `reference` at the
 * same budget with its 95% interval; the evidence kept and the routing hit. A Markdown table.
 */
export function renderVsReference(
  questions: readonly QuestionRow[],
  reference: string,
  opts: ReportOptions = {},
): string {
  const groups = new Map<string, QuestionRow[]>();
  for (const q of questions) {
    const k = JSON.stringify([q.method, q.budget]);
    const g = groups.get(k);
    if (g) g.push(q);
    else groups.set(k, [q]);
  }
  const signed = (v: number, scale: number, digits: number) =>
    `${v >= 0 ? "+" : "−"}${fixed(Math.abs(v) * scale, digits)}`;
  const cell = (g: QuestionRow[], metric: PairedMetric, scale: number, digits: number) => {
    const vals = g.map((q) => q[metric]).filter((v): v is number => typeof v === "number");
    if (vals.length === 0) return [MISSING, MISSING];
    const mean = vals.reduce((a, b) => a + b, 0) / vals.length;
    const { method, budget } = g[0];
    const d =
      method === reference || budget === null
        ? null
        : pairedDifference(
            questions,
            metric,
            { method, budget, conversation: null, category: ALL },
            reference,
          );
    return [
      fixed(mean * scale, digits),
      d
        ? `${signed(d.mean, scale, digits)} [${signed(d.low, scale, digits)}, ${signed(d.high, scale, digits)}]`
        : MISSING,
    ];
  };
  const share = (g: QuestionRow[], f: (q: QuestionRow) => number | null | undefined) => {
    const vals = g.map(f).filter((v): v is number => typeof v === "number");
    return vals.length
      ? `${fixed((vals.reduce((a, b) => a + b, 0) / vals.length) * 100, 1)} %`
      : MISSING;
  };
  const body = [...groups.values()]
    .sort(
      (a, b) =>
        compareMethods(a[0].method, b[0].method) || compareBudgets(a[0].budget, b[0].budget),
    )
    .map((g) => [
      mdEscape(methodLabel(g[0].method)),
      g[0].budget === null ? "—" : String(g[0].budget),
      String(g.length),
      ...cell(g, "f1", 100, 1),
      ...cell(g, "kl", 1, 3),
      ...cell(g, "klGreedy", 1, 3),
      share(g, (q) => q.evidenceKept),
      share(g, (q) => q.hit),
    ]);
  const vs = `vs ${mdEscape(methodLabel(reference))} [95%]`;
  const parts: string[] = [];
  if (opts.title !== undefined) parts.push(`## ${mdEscape(opts.title)}`);
  parts.push(
    "F1 ×100; KL(full ‖ method) with the gold answer forced and along the full cache's greedy answer; differences paired over the same questions at the same budget, with 95% bootstrap intervals. Evidence kept: share of the evidence turns' entries in the answering cache.",
  );
  parts.push(
    markdownTable(
      [
        "Method",
        "Budget",
        "Questions",
        "F1",
        vs,
        "KL (gold)",
        vs,
        "KL (greedy)",
        vs,
        "Evidence kept",
        "Routing hit",
      ],
      body,
    ),
  );
  return `${parts.join("\n\n")}\n`;
}

/** The evidence scopes a comparison reports: every question, old evidence, recent evidence. */
const SCOPES = [ALL, "evidence-old", "evidence-recent"] as const;

/** One method × budget of a comparison: per scope its mean F1, and its paired difference against the baseline. */
export interface Comparison {
  method: string;
  budget: number | null;
  scopes: Record<
    (typeof SCOPES)[number],
    { f1: number; questions: number; vsBaseline: PairedInterval | null } | null
  >;
}

/**
 * Each method × budget's F1 on all questions, on those whose evidence is old and on those whose
 * evidence is recent, with the paired difference against `baseline` (questions matched by
 * conversation and index) and its 95% bootstrap interval; the baseline's own difference is null.
 * Sorted as the tables are.
 */
export function compareWith(rows: readonly QuestionRow[], baseline: string): Comparison[] {
  const key = (r: QuestionRow) => `${r.conversation}\t${r.question}`;
  const base = new Map(rows.filter((r) => r.method === baseline).map((r) => [key(r), r]));
  const groups = new Map<string, QuestionRow[]>();
  for (const r of rows) {
    const k = JSON.stringify([r.method, r.budget]);
    const g = groups.get(k);
    if (g) g.push(r);
    else groups.set(k, [r]);
  }
  return [...groups.values()]
    .sort(
      (a, b) =>
        compareMethods(a[0].method, b[0].method) || compareBudgets(a[0].budget, b[0].budget),
    )
    .map((group) => {
      const { method, budget } = group[0];
      const scope = (name: (typeof SCOPES)[number]) => {
        const sel = name === ALL ? group : group.filter((r) => r.age === name);
        if (sel.length === 0) return null;
        const paired = sel.filter((r) => base.has(key(r)));
        const vsBaseline =
          method === baseline || paired.length === 0
            ? null
            : pairedBootstrap(
                paired.map((r) => r.f1),
                paired.map((r) => (base.get(key(r)) as QuestionRow).f1),
              );
        return {
          f1: sel.reduce((n, r) => n + r.f1, 0) / sel.length,
          questions: sel.length,
          vsBaseline,
        };
      };
      return {
        method,
        budget,
        scopes: {
          [ALL]: scope(ALL),
          "evidence-old": scope("evidence-old"),
          "evidence-recent": scope("evidence-recent"),
        },
      };
    });
}

/**
 * A Markdown table of {@link compareWith}: F1 (×100) per method × budget on all, old-evidence and
 * recent-evidence questions, each with the paired difference against `baseline` and its 95% interval.
 *
 * @example
 * ```ts
 * renderComparison(rows, "recent");
 * // | Method | Budget | all: F1 | vs Recent (truncated prompt) [95%] | evidence-old: F1 | … |
 * // | EpiCache | 1024 | 9.8 | +1.2 [−0.4, +2.9] | … |
 * ```
 */
export function renderComparison(
  rows: readonly QuestionRow[],
  baseline: string,
  opts: ReportOptions = {},
): string {
  const signed = (v: number) => `${v >= 0 ? "+" : "−"}${fixed(Math.abs(v) * 100, 1)}`;
  const body = compareWith(rows, baseline).map((c) => [
    mdEscape(methodLabel(c.method)),
    c.budget === null ? "—" : String(c.budget),
    ...SCOPES.flatMap((name) => {
      const sc = c.scopes[name];
      if (!sc) return [MISSING, MISSING];
      const ci = sc.vsBaseline;
      return [
        fixed(sc.f1 * 100, 1),
        ci ? `${signed(ci.mean)} [${signed(ci.low)}, ${signed(ci.high)}]` : MISSING,
      ];
    }),
  ]);
  const key = (r: QuestionRow) => `${r.conversation}\t${r.question}`;
  const counts = SCOPES.map(
    (name) =>
      `${name} ${new Set(rows.filter((r) => name === ALL || r.age === name).map(key)).size}`,
  );
  const vs = `vs ${mdEscape(methodLabel(baseline))} [95%]`;
  const parts: string[] = [];
  if (opts.title !== undefined) parts.push(`## ${mdEscape(opts.title)}`);
  parts.push(
    `Questions: ${counts.join(" · ")}. F1 ×100; differences are paired over the same questions, with 95% bootstrap intervals.`,
  );
  parts.push(
    markdownTable(["Method", "Budget", ...SCOPES.flatMap((name) => [`${name}: F1`, vs])], body),
  );
  return `${parts.join("\n\n")}\n`;
}

/**
 * A self-contained SVG of {@link compareWith}: per method × budget, its F1 difference against
 * `baseline` (×100) with the 95% interval as a whisker, on all questions and on old-evidence ones
 * side by side, and a line at 0.
 */
export function renderComparisonPlot(
  rows: readonly QuestionRow[],
  baseline: string,
  opts: ReportOptions = {},
): string {
  const panels = [ALL, "evidence-old"] as const;
  const items = compareWith(rows, baseline).filter((c) => c.method !== baseline);
  const W = 760;
  const rowH = 26;
  const top = 56;
  const labelW = 240;
  const H = top + Math.max(1, items.length) * rowH + 48;
  const panelW = (W - labelW - 40) / panels.length;
  const values = items.flatMap((c) =>
    panels.flatMap((p) => {
      const ci = c.scopes[p]?.vsBaseline;
      return ci ? [ci.low * 100, ci.high * 100] : [];
    }),
  );
  const ticks = niceTicks(Math.min(0, ...values), Math.max(0, ...values, 1));
  const [v0, v1] = [ticks[0], ticks[ticks.length - 1]];
  const digits = digitsFor(ticks.length > 1 ? ticks[1] - ticks[0] : 1);
  const title = opts.title ?? `F1 against ${methodLabel(baseline)} (paired, 95% intervals)`;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="#ffffff"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${escapeXml(title)}</text>`,
  ];
  panels.forEach((panel, pi) => {
    const left = labelW + pi * (panelW + 20);
    const x = (v: number) => left + ((v - v0) / (v1 - v0)) * panelW;
    const bottom = top + items.length * rowH;
    out.push(
      `<text x="${num(left + panelW / 2)}" y="${top - 14}" text-anchor="middle" font-weight="bold">${escapeXml(panel === ALL ? "all questions" : "evidence before the recent window")}</text>`,
    );
    for (const t of ticks) {
      out.push(
        `<line x1="${num(x(t))}" y1="${top}" x2="${num(x(t))}" y2="${bottom}" stroke="${t === 0 ? "#333333" : "#e5e5e5"}"/>`,
      );
      out.push(
        `<text x="${num(x(t))}" y="${bottom + 16}" text-anchor="middle">${t.toFixed(digits)}</text>`,
      );
    }
    out.push(
      `<text x="${num(left + panelW / 2)}" y="${bottom + 34}" text-anchor="middle">ΔF1 ×100</text>`,
    );
    items.forEach((c, i) => {
      const y = top + i * rowH + rowH / 2;
      const ci = c.scopes[panel]?.vsBaseline;
      if (!ci) return;
      const colour = ci.low > 0 ? "#59a14f" : ci.high < 0 ? "#e15759" : "#4e79a7";
      out.push(
        `<line data-method="${escapeXml(c.method)}" x1="${num(x(ci.low * 100))}" y1="${num(y)}" x2="${num(x(ci.high * 100))}" y2="${num(y)}" stroke="${colour}" stroke-width="2"/>`,
      );
      out.push(`<circle cx="${num(x(ci.mean * 100))}" cy="${num(y)}" r="4" fill="${colour}"/>`);
    });
  });
  items.forEach((c, i) => {
    const y = top + i * rowH + rowH / 2 + 4;
    out.push(
      `<text x="${labelW - 10}" y="${num(y)}" text-anchor="end">${escapeXml(`${methodLabel(c.method)}${c.budget === null ? "" : ` @${c.budget}`}`)}</text>`,
    );
  });
  out.push("</svg>");
  return `${out.join("\n")}\n`;
}

/**
 * A self-contained SVG (640×400, no external fonts or scripts) of a metric of the "all" category,
 * combined over conversations, against the budget on a log2 axis with ticks at the budgets present:
 * one polyline with point markers per method (distinct colours, a legend), Full KV as a horizontal
 * dashed line. F1 is drawn ×100. Points whose budget is not positive or whose value is not finite are
 * left out. Every method's polyline and the Full KV line carry `data-method`.
 *
 * @example
 * ```ts
 * await writeFile("f1.svg", renderPlot(rows, "f1", { title: "LoCoMo: F1 against budget" }));
 * ```
 */
export function renderPlot(
  rows: readonly ResultRow[],
  metric: PlotMetric,
  opts: ReportOptions = {},
): string {
  const scale = metric === "f1" ? 100 : 1;
  const yLabel = metric === "f1" ? "F1 (×100)" : "KL(full ‖ method)";
  const title =
    opts.title ??
    `${metric === "f1" ? "F1" : "KL(full ‖ method)"} against KV budget (all categories)`;
  const all = aggregate(rows).filter((r) => r.category === ALL);
  const fullRow = all.find((r) => r.method === FULL && r.kl !== null && Number.isFinite(r.f1));
  const fullValue = fullRow ? fullRow[metric] : null;
  const full = fullValue === null ? null : fullValue * scale;
  const series: { method: string; points: { budget: number; value: number }[] }[] = [];
  for (const r of all) {
    const value = r[metric];
    if (
      r.method === FULL ||
      r.budget === null ||
      !(r.budget > 0) ||
      value === null ||
      !Number.isFinite(value)
    )
      continue;
    const point = { budget: r.budget, value: value * scale };
    const last = series.at(-1);
    if (last && last.method === r.method) last.points.push(point);
    else series.push({ method: r.method, points: [point] });
  }

  // Frame: the plot area, with the legend to its right.
  const W = 640;
  const H = 400;
  const area = { left: 64, right: 456, top: 44, bottom: 340 };
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="#ffffff"/>`,
    `<text x="${W / 2}" y="24" text-anchor="middle" font-size="15" font-weight="bold">${escapeXml(title)}</text>`,
  ];
  const values = [
    ...series.flatMap((s) => s.points.map((p) => p.value)),
    ...(full === null ? [] : [full]),
  ];
  if (values.length === 0) {
    out.push(
      `<text x="${W / 2}" y="${H / 2}" text-anchor="middle" fill="#666666">no data</text>`,
      "</svg>",
    );
    return `${out.join("\n")}\n`;
  }

  // x: log2 of the budget, half a doubling of room at each end.
  const budgets = [...new Set(series.flatMap((s) => s.points.map((p) => p.budget)))].sort(
    (a, b) => a - b,
  );
  const logs = budgets.length > 0 ? budgets.map(Math.log2) : [0];
  const [x0, x1] = [Math.min(...logs) - 0.5, Math.max(...logs) + 0.5];
  const x = (budget: number): number =>
    area.left + ((Math.log2(budget) - x0) / (x1 - x0)) * (area.right - area.left);
  // y: nice ticks over the values; KL and F1 are never negative.
  const ticks = niceTicks(Math.max(0, Math.min(...values)), Math.max(...values));
  const [y0, y1] = [ticks[0], ticks[ticks.length - 1]];
  const y = (v: number): number => area.bottom - ((v - y0) / (y1 - y0)) * (area.bottom - area.top);
  const tickDigits = digitsFor(ticks.length > 1 ? ticks[1] - ticks[0] : 1);

  // Grid and y axis.
  for (const t of ticks) {
    out.push(
      `<line x1="${area.left}" y1="${num(y(t))}" x2="${area.right}" y2="${num(y(t))}" stroke="#e5e5e5"/>`,
    );
    out.push(
      `<text x="${area.left - 6}" y="${num(y(t) + 4)}" text-anchor="end">${t.toFixed(tickDigits)}</text>`,
    );
  }
  out.push(
    `<line x1="${area.left}" y1="${area.top}" x2="${area.left}" y2="${area.bottom}" stroke="#333333"/>`,
  );
  out.push(
    `<line x1="${area.left}" y1="${area.bottom}" x2="${area.right}" y2="${area.bottom}" stroke="#333333"/>`,
  );
  // x ticks at the budgets present.
  for (const b of budgets) {
    out.push(
      `<line x1="${num(x(b))}" y1="${area.bottom}" x2="${num(x(b))}" y2="${area.bottom + 5}" stroke="#333333"/>`,
    );
    out.push(`<text x="${num(x(b))}" y="${area.bottom + 18}" text-anchor="middle">${b}</text>`);
  }
  const midX = (area.left + area.right) / 2;
  const midY = (area.top + area.bottom) / 2;
  out.push(
    `<text x="${midX}" y="${area.bottom + 40}" text-anchor="middle">KV budget (entries per head, log₂ scale)</text>`,
  );
  out.push(
    `<text x="18" y="${midY}" text-anchor="middle" transform="rotate(-90 18 ${midY})">${escapeXml(yLabel)}</text>`,
  );

  // Data: Full KV dashed across, then one polyline and markers per method.
  const legend: { label: string; colour: string; dashed: boolean }[] = [];
  if (full !== null) {
    out.push(
      `<line data-method="${FULL}" x1="${area.left}" y1="${num(y(full))}" x2="${area.right}" y2="${num(y(full))}" stroke="#000000" stroke-width="1.5" stroke-dasharray="6 4"/>`,
    );
    legend.push({ label: methodLabel(FULL), colour: "#000000", dashed: true });
  }
  series.forEach((s, i) => {
    const colour = PALETTE[i % PALETTE.length];
    const points = s.points.map((p) => `${num(x(p.budget))},${num(y(p.value))}`).join(" ");
    out.push(
      `<polyline data-method="${escapeXml(s.method)}" points="${points}" fill="none" stroke="${colour}" stroke-width="2"/>`,
    );
    for (const p of s.points)
      out.push(
        `<circle cx="${num(x(p.budget))}" cy="${num(y(p.value))}" r="3.5" fill="${colour}"/>`,
      );
    legend.push({ label: methodLabel(s.method), colour, dashed: false });
  });

  // Legend.
  legend.forEach((entry, i) => {
    const ly = area.top + 8 + i * 20;
    const lx = area.right + 16;
    const dash = entry.dashed ? ` stroke-dasharray="6 4"` : "";
    out.push(
      `<line x1="${lx}" y1="${ly}" x2="${lx + 24}" y2="${ly}" stroke="${entry.colour}" stroke-width="2"${dash}/>`,
    );
    if (!entry.dashed)
      out.push(`<circle cx="${lx + 12}" cy="${ly}" r="3.5" fill="${entry.colour}"/>`);
    out.push(`<text x="${lx + 30}" y="${ly + 4}">${escapeXml(entry.label)}</text>`);
  });
  out.push("</svg>");
  return `${out.join("\n")}\n`;
}

/** Escapes text for XML content and double-quoted attributes. */
export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => XML_ENTITIES[c]);
}

const XML_ENTITIES: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&apos;",
};
/** Tableau 10: distinct, and readable on white. */
const PALETTE = [
  "#4e79a7",
  "#f28e2b",
  "#e15759",
  "#76b7b2",
  "#59a14f",
  "#edc948",
  "#b07aa1",
  "#ff9da7",
  "#9c755f",
  "#bab0ac",
];

function sum(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0);
}

function mean(values: readonly number[]): number {
  return values.length === 0 ? Number.NaN : sum(values) / values.length;
}

/** Question-weighted mean; the plain mean when no row has a question. */
function weightedMean<T extends { questions: number }>(
  rows: readonly T[],
  value: (row: T) => number,
): number {
  const weight = sum(rows.map((r) => r.questions));
  if (weight === 0) return mean(rows.map(value));
  return sum(rows.map((r) => r.questions * value(r))) / weight;
}

function rankIn(order: readonly string[], name: string): number {
  const i = order.indexOf(name);
  return i < 0 ? order.length : i;
}

function compareMethods(a: string, b: string): number {
  // A method with options (epicache:n-medoid=3) sits after its base name.
  return (
    rankIn(METHOD_ORDER, baseEvalMethod(a)) - rankIn(METHOD_ORDER, baseEvalMethod(b)) ||
    (a < b ? -1 : a > b ? 1 : 0)
  );
}

function compareBudgets(a: number | null, b: number | null): number {
  if (a === null || b === null) return (a === null ? 0 : 1) - (b === null ? 0 : 1);
  return a - b;
}

function compareCategories(a: string, b: string): number {
  const rank = (c: string): number =>
    c === ALL ? CATEGORY_ORDER.length + 1 : rankIn(CATEGORY_ORDER, c);
  return rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0);
}

function cellKey(method: string, budget: number | null, category: string): string {
  return JSON.stringify([method, budget, category]);
}

/** The (method, budget) pairs present, in table order (aggregate's rows are sorted). */
function methodBudgets(agg: readonly AggregateRow[]): { method: string; budget: number | null }[] {
  const seen = new Set<string>();
  const out: { method: string; budget: number | null }[] = [];
  for (const r of agg) {
    const key = JSON.stringify([r.method, r.budget]);
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ method: r.method, budget: r.budget });
  }
  return out;
}

/** A category's question count over the methods; "min–max" when they differ (they should not). */
function questionCount(agg: readonly AggregateRow[], category: string): string {
  const counts = agg.filter((r) => r.category === category).map((r) => r.questions);
  if (counts.length === 0) return MISSING;
  const [lo, hi] = [Math.min(...counts), Math.max(...counts)];
  return lo === hi ? String(lo) : `${lo}–${hi}`;
}

/**
 * One row per (method, budget, conversation) for the cost table, with category "all": the
 * conversation's "all" row, or its category rows combined when it has none (cost figures are per
 * conversation and repeat on every category row).
 */
function costRows(rows: readonly ResultRow[]): ResultRow[] {
  const byConversation = new Map<string, ResultRow[]>();
  for (const r of rows) {
    const key = JSON.stringify([r.method, r.budget, r.conversation]);
    const group = byConversation.get(key);
    if (group) group.push(r);
    else byConversation.set(key, [r]);
  }
  const out: ResultRow[] = [];
  for (const group of byConversation.values()) {
    const whole = group.filter((r) => r.category === ALL);
    const picked = whole.length > 0 ? whole : group;
    for (const a of aggregate(picked.map((r) => ({ ...r, category: ALL })))) {
      out.push({ ...a, conversation: group[0].conversation });
    }
  }
  return out;
}

/** A Markdown table with padded columns: the first left-aligned, the rest right-aligned. */
function markdownTable(header: readonly string[], body: readonly string[][]): string {
  const widths = header.map((h, c) => Math.max(3, h.length, ...body.map((row) => row[c].length)));
  const line = (cells: readonly string[]): string =>
    `| ${cells.map((v, c) => (c === 0 ? v.padEnd(widths[c]) : v.padStart(widths[c]))).join(" | ")} |`;
  const rule = `| ${widths.map((w, c) => (c === 0 ? `:${"-".repeat(w - 1)}` : `${"-".repeat(w - 1)}:`)).join(" | ")} |`;
  return [line(header), rule, ...body.map(line)].join("\n");
}

/** Keeps a name from breaking a Markdown table row. */
function mdEscape(text: string): string {
  return text
    .replace(/\\/g, "\\\\")
    .replace(/\|/g, "\\|")
    .replace(/\s*\n\s*/g, " ");
}

function fixed(value: number, digits: number): string {
  return Number.isFinite(value) ? value.toFixed(digits) : MISSING;
}

/** An SVG coordinate: two decimals at most, no trailing zeros. */
function num(value: number): string {
  return String(Math.round(value * 100) / 100);
}

/** Evenly spaced ticks at 1, 2 or 5 × 10^k covering [lo, hi], about five of them. */
function niceTicks(lo: number, hi: number): number[] {
  if (hi - lo < 1e-12) {
    const pad = Math.abs(hi) > 0 ? Math.abs(hi) * 0.1 : 1;
    [lo, hi] = [Math.max(0, lo - pad), hi + pad];
  }
  const rough = (hi - lo) / 5;
  const magnitude = 10 ** Math.floor(Math.log10(rough));
  const step = ([1, 2, 5, 10].find((m) => m * magnitude >= rough) ?? 10) * magnitude;
  const first = Math.floor(lo / step + 1e-9);
  const last = Math.ceil(hi / step - 1e-9);
  const digits = digitsFor(step);
  return Array.from({ length: last - first + 1 }, (_, i) =>
    Number(((first + i) * step).toFixed(digits)),
  );
}

/** Decimals a tick label needs at this step. */
function digitsFor(step: number): number {
  return Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
}

import { describe, expect, it } from "vitest";
import type { ResultRow } from "./report";
import {
  aggregate,
  escapeXml,
  methodLabel,
  pairedDifference,
  parseQuestionRows,
  renderPlot,
  renderTable,
  renderComparison,
  renderComparisonPlot,
  renderVsReference,
  withIntervals,
  type QuestionRow,
} from "./report";

function row(over: Partial<ResultRow>): ResultRow {
  return {
    method: "epicache",
    budget: 1024,
    conversation: "c1",
    category: "all",
    questions: 10,
    f1: 0.5,
    kl: 0.1,
    routingHit: null,
    entries: 1000,
    compression: 4,
    buildSeconds: 2,
    decodeMsPerToken: 10,
    peakRssBytes: 1e9,
    ...over,
  };
}

/** The table rows (cells trimmed) under a `### heading`, header and rule included. */
function tableAfter(markdown: string, heading: string): string[][] {
  const lines = markdown.split("\n");
  const start = lines.indexOf(heading);
  expect(start).toBeGreaterThanOrEqual(0);
  const out: string[][] = [];
  for (const line of lines.slice(start + 2)) {
    if (!line.startsWith("|")) break;
    out.push(
      line
        .slice(1, -1)
        .split(" | ")
        .map((c) => c.trim()),
    );
  }
  return out;
}

/**
 * A small XML well-formedness check: tags nest and close, attributes are quoted, and text and
 * attribute values hold no raw `<` and no `&` outside an entity. Returns the element names in order.
 */
function checkXml(xml: string): string[] {
  const stack: string[] = [];
  const names: string[] = [];
  const token = /<(\/?)([A-Za-z_][\w:.-]*)((?:\s+[A-Za-z_][\w:.-]*="[^"<]*")*)\s*(\/?)>|([^<]+)/y;
  const entity = /&(?!(?:amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);)/;
  let pos = 0;
  for (const m of xml.matchAll(new RegExp(token.source, "gy"))) {
    expect(m.index, `unparsable XML at ${pos}: ${xml.slice(pos, pos + 40)}`).toBe(pos);
    pos += m[0].length;
    const [, closing, name, attrs, selfClosing, text] = m;
    if (text !== undefined) {
      expect(entity.test(text), `bare & in text ${text}`).toBe(false);
      continue;
    }
    expect(entity.test(attrs), `bare & in attributes ${attrs}`).toBe(false);
    if (closing) {
      expect(stack.pop(), `</${name}> closes the wrong element`).toBe(name);
    } else {
      names.push(name);
      if (!selfClosing) stack.push(name);
    }
  }
  expect(pos, `unparsable XML at ${pos}: ${xml.slice(pos, pos + 40)}`).toBe(xml.length);
  expect(stack).toEqual([]);
  return names;
}

describe("checkXml (the test's own well-formedness check)", () => {
  it("accepts well-formed XML and rejects what is not", () => {
    expect(checkXml(`<a x="1"><b/>t &amp; u</a>`)).toEqual(["a", "b"]);
    expect(() => checkXml("<a><b></a></b>")).toThrow();
    expect(() => checkXml("<a>x < y</a>")).toThrow();
    expect(() => checkXml("<a>x & y</a>")).toThrow();
    expect(() => checkXml(`<a x="&">y</a>`)).toThrow();
    expect(() => checkXml("<a>")).toThrow();
  });
});

describe("aggregate", () => {
  it("weights f1, kl and routing hit by questions, sums questions, averages costs, takes the max RSS", () => {
    const [a, ...rest] = aggregate([
      row({
        conversation: "c1",
        questions: 30,
        f1: 0.5,
        kl: 0.2,
        routingHit: 0.9,
        entries: 100,
        buildSeconds: 1,
        peakRssBytes: 5,
      }),
      row({
        conversation: "c2",
        questions: 10,
        f1: 0.1,
        kl: 0.6,
        routingHit: 0.5,
        entries: 300,
        buildSeconds: 3,
        peakRssBytes: 9,
      }),
    ]);
    expect(rest).toEqual([]);
    expect(a.questions).toBe(40);
    expect(a.conversations).toBe(2);
    expect(a.f1).toBeCloseTo(0.4, 12);
    expect(a.kl).toBeCloseTo(0.3, 12);
    expect(a.routingHit).toBeCloseTo(0.8, 12);
    // Costs are plain means: not weighted by questions.
    expect(a.entries).toBe(200);
    expect(a.buildSeconds).toBe(2);
    expect(a.peakRssBytes).toBe(9);
  });

  it("weights routing hit over the rows that have one, and gives null when none has", () => {
    const [a] = aggregate([
      row({ conversation: "c1", questions: 30, routingHit: null }),
      row({ conversation: "c2", questions: 10, routingHit: 0.25 }),
    ]);
    expect(a.routingHit).toBe(0.25);
    const [full] = aggregate([
      row({ method: "full", budget: null }),
      row({ method: "full", budget: null, conversation: "c2" }),
    ]);
    expect(full.routingHit).toBeNull();
  });

  it("keeps (method, budget, category) apart and sorts them in paper order", () => {
    const agg = aggregate([
      row({ method: "zeta", budget: 64 }),
      row({ method: "snapkv", budget: 2048 }),
      row({ method: "snapkv", budget: 512, category: "temporal" }),
      row({ method: "snapkv", budget: 512, category: "commonsense" }),
      row({ method: "snapkv", budget: 512, category: "multi-hop" }),
      row({ method: "snapkv", budget: 512 }),
      row({ method: "epicache", budget: 512 }),
      row({ method: "full", budget: null }),
      row({ method: "alpha", budget: 64 }),
    ]);
    expect(agg.map((r) => `${r.method}/${r.budget}/${r.category}`)).toEqual([
      "full/null/all",
      "epicache/512/all",
      "snapkv/512/multi-hop",
      "snapkv/512/temporal",
      "snapkv/512/commonsense",
      "snapkv/512/all",
      "snapkv/2048/all",
      "alpha/64/all",
      "zeta/64/all",
    ]);
  });

  it("falls back to plain means when a group has no questions", () => {
    const [a] = aggregate([
      row({ questions: 0, f1: 0.2 }),
      row({ conversation: "c2", questions: 0, f1: 0.4 }),
    ]);
    expect(a.f1).toBeCloseTo(0.3, 12);
    expect(a.questions).toBe(0);
  });

  it("rejects a negative question count with a code", () => {
    expect(() => aggregate([row({ questions: -1 })])).toThrow(
      expect.objectContaining({ code: "invalid_argument" }),
    );
  });
});

describe("renderTable", () => {
  const rows: ResultRow[] = [
    // Deliberately out of order; "snapkv" at 512 has no temporal row.
    row({ method: "snapkv", budget: 2048, category: "single-hop", questions: 4, f1: 0.25 }),
    row({ method: "snapkv", budget: 512, category: "all", questions: 10, f1: 0.123, kl: 0.45678 }),
    row({ method: "snapkv", budget: 512, category: "multi-hop", questions: 6, f1: 0.3 }),
    row({ method: "snapkv", budget: 512, category: "zz-custom", questions: 4, f1: 0.3 }),
    row({
      method: "epicache",
      budget: 512,
      category: "temporal",
      questions: 4,
      f1: 0.75,
      routingHit: 0.875,
      compression: 8.04,
    }),
    row({
      method: "epicache",
      budget: 512,
      category: "all",
      questions: 10,
      f1: 0.6666,
      kl: 0.0125,
      routingHit: 0.875,
      compression: 8.04,
      buildSeconds: 12.345,
      decodeMsPerToken: 3.456,
    }),
    row({ method: "full", budget: null, category: "single-hop", questions: 4, f1: 0.8, kl: 0 }),
    row({ method: "full", budget: null, category: "temporal", questions: 4, f1: 0.9, kl: 0 }),
    row({ method: "full", budget: null, category: "multi-hop", questions: 6, f1: 0.7, kl: 0 }),
    row({
      method: "full",
      budget: null,
      category: "all",
      questions: 10,
      f1: 0.78,
      kl: 0,
      compression: 1,
    }),
  ];
  const md = renderTable(rows, { title: "LoCoMo | tiny" });

  it("orders rows Full KV first, then the paper's methods, budgets ascending", () => {
    const f1 = tableAfter(md, "### F1 (×100)");
    expect(f1.slice(2).map((r) => `${r[0]} ${r[1]}`)).toEqual([
      "Full KV —",
      "EpiCache 512",
      "SnapKV 512",
      "SnapKV 2048",
    ]);
  });

  it("orders columns LoCoMo categories first, unknown ones after, then Avg", () => {
    for (const heading of ["### F1 (×100)", "### KL(full ‖ method)"]) {
      const [header, rule] = tableAfter(md, heading);
      expect(header).toEqual([
        "Method",
        "Budget",
        "multi-hop",
        "temporal",
        "single-hop",
        "zz-custom",
        "Avg",
      ]);
      expect(rule[0]).toMatch(/^:-+$/);
      expect(rule.slice(1).every((c) => /^-+:$/.test(c))).toBe(true);
    }
  });

  it("formats F1 ×100 with one decimal, KL with three, and '–' for missing cells", () => {
    const f1 = tableAfter(md, "### F1 (×100)").slice(2);
    expect(f1[0]).toEqual(["Full KV", "—", "70.0", "90.0", "80.0", "–", "78.0"]);
    expect(f1[1]).toEqual(["EpiCache", "512", "–", "75.0", "–", "–", "66.7"]);
    expect(f1[2]).toEqual(["SnapKV", "512", "30.0", "–", "–", "30.0", "12.3"]);
    expect(f1[3]).toEqual(["SnapKV", "2048", "–", "–", "25.0", "–", "–"]);
    const kl = tableAfter(md, "### KL(full ‖ method)").slice(2);
    expect(kl[0]).toEqual(["Full KV", "—", "0.000", "0.000", "0.000", "–", "0.000"]);
    expect(kl[2][6]).toBe("0.457");
  });

  it("gives question counts per category, a range where methods differ", () => {
    expect(md).toContain(
      "Questions: multi-hop 6 · temporal 4 · single-hop 4 · zz-custom 4 · all 10\n",
    );
    const uneven = renderTable([
      row({ method: "full", budget: null, questions: 12 }),
      row({ questions: 10 }),
    ]);
    expect(uneven).toContain("Questions: all 10–12\n");
  });

  it("has a routing and cost table from the 'all' rows", () => {
    const cost = tableAfter(md, "### Routing and cost");
    expect(cost[0]).toEqual([
      "Method",
      "Budget",
      "Routing hit (%)",
      "Compression (×)",
      "Build (s)",
      "Decode (ms/token)",
    ]);
    expect(cost[2]).toEqual(["Full KV", "—", "–", "1.0×", "2.0", "10.00"]);
    expect(cost[3]).toEqual(["EpiCache", "512", "87.5", "8.0×", "12.3", "3.46"]);
    expect(cost.slice(2).map((r) => `${r[0]} ${r[1]}`)).toEqual([
      "Full KV —",
      "EpiCache 512",
      "SnapKV 512",
      "SnapKV 2048",
    ]);
  });

  it("escapes pipes in names and puts the title on top", () => {
    expect(md.startsWith("## LoCoMo \\| tiny\n\n")).toBe(true);
    const odd = renderTable([row({ method: "a|b", category: "x|y" })]);
    expect(odd).toContain("a\\|b");
    expect(tableAfter(odd, "### F1 (×100)")[0]).toEqual(["Method", "Budget", "x\\|y", "Avg"]);
  });

  it("renders the tables even with no rows", () => {
    const empty = renderTable([]);
    expect(tableAfter(empty, "### F1 (×100)")).toHaveLength(2);
    expect(empty).toContain("Questions: all –");
  });
});

describe("renderPlot", () => {
  const methods = ["epicache", "snapkv", "a<b&c"];
  const rows: ResultRow[] = [
    row({ method: "full", budget: null, f1: 0.8, kl: 0 }),
    row({ method: "full", budget: null, conversation: "c2", f1: 0.6, kl: 0 }),
    ...methods.flatMap((method, m) =>
      [256, 1024, 4096].flatMap((budget, i) => [
        row({ method, budget, f1: 0.3 + 0.1 * i - 0.05 * m, kl: 0.5 / (i + 1) + m * 0.1 }),
        row({ method, budget, conversation: "c2", f1: 0.2 + 0.1 * i, kl: 0.4 / (i + 1) }),
        // Per-category rows are not plotted.
        row({ method, budget, category: "temporal", f1: 0.99, kl: 9 }),
      ]),
    ),
  ];

  for (const metric of ["f1", "kl"] as const) {
    it(`${metric}: is well-formed, self-contained SVG of about 640×400`, () => {
      const svg = renderPlot(rows, metric);
      const names = checkXml(svg);
      expect(names[0]).toBe("svg");
      expect(svg).toMatch(
        /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg" width="640" height="400"/,
      );
      expect(svg).not.toMatch(/<script|@import|url\(|href=/);
    });

    it(`${metric}: draws one polyline per method and Full KV as a dashed line`, () => {
      const svg = renderPlot(rows, metric);
      const polylines = [...svg.matchAll(/<polyline data-method="([^"]*)" points="([^"]*)"/g)];
      expect(polylines.map((m) => m[1])).toEqual(["epicache", "snapkv", "a&lt;b&amp;c"]);
      for (const m of polylines) expect(m[2].split(" ")).toHaveLength(3);
      const full = svg.match(/<line data-method="full"[^>]*>/g) ?? [];
      expect(full).toHaveLength(1);
      expect(full[0]).toContain("stroke-dasharray");
      // Distinct colours.
      const colours = [...svg.matchAll(/<polyline [^>]*stroke="(#[0-9a-f]{6})"/g)].map((m) => m[1]);
      expect(new Set(colours).size).toBe(3);
      // Ticks at the budgets present, and a legend with every method.
      for (const b of [256, 1024, 4096]) expect(svg).toContain(`>${b}</text>`);
      for (const label of ["Full KV", "EpiCache", "SnapKV", "a&lt;b&amp;c"])
        expect(svg).toContain(`>${label}</text>`);
    });
  }

  it("spaces budgets on a log2 axis and puts higher values higher", () => {
    const svg = renderPlot(rows, "f1");
    const epicache = svg.match(/<polyline data-method="epicache" points="([^"]*)"/);
    expect(epicache).not.toBeNull();
    const points = (epicache?.[1] ?? "").split(" ").map((p) => p.split(",").map(Number));
    // 256 → 1024 → 4096: equal steps in x; F1 rises, so y falls.
    expect(points[1][0] - points[0][0]).toBeCloseTo(points[2][0] - points[1][0], 1);
    expect(points[0][1]).toBeGreaterThan(points[1][1]);
    expect(points[1][1]).toBeGreaterThan(points[2][1]);
  });

  it("escapes the title and labels, and says so when there is no data", () => {
    const svg = renderPlot(rows, "kl", { title: `KL <"R&D">` });
    checkXml(svg);
    expect(svg).toContain("KL &lt;&quot;R&amp;D&quot;&gt;");
    expect(svg).not.toContain("a<b");
    const empty = renderPlot([], "f1");
    checkXml(empty);
    expect(empty).toContain("no data");
    expect(empty).not.toContain("<polyline");
  });

  it("plots a lone method with a single budget and no Full KV", () => {
    const svg = renderPlot([row({ method: "kvzip", budget: 512 })], "f1");
    checkXml(svg);
    expect(svg.match(/<polyline /g)).toHaveLength(1);
    expect(svg).not.toContain('data-method="full"');
  });
});

describe("helpers", () => {
  it("escapeXml and methodLabel", () => {
    expect(escapeXml(`<a href="x">&'</a>`)).toBe(
      "&lt;a href=&quot;x&quot;&gt;&amp;&apos;&lt;/a&gt;",
    );
    expect(methodLabel("full")).toBe("Full KV");
    expect(methodLabel("streamingllm")).toBe("StreamingLLM");
    expect(methodLabel("toString")).toBe("toString");
  });
});

describe("renderComparison", () => {
  const q = (
    method: string,
    budget: number | null,
    question: number,
    f1: number,
    age = "evidence-old",
  ): QuestionRow => ({
    conversation: "c",
    method,
    budget,
    question,
    category: "single-hop",
    age,
    f1,
    kl: null,
    hit: null,
    routed: 0,
    answer: "",
  });
  const rows: QuestionRow[] = [];
  for (let i = 0; i < 40; i++) {
    const age = i < 30 ? "evidence-old" : "evidence-recent";
    rows.push(q("recent", null, i, age === "evidence-old" ? 0 : 0.5, age));
    rows.push(q("epicache", 1024, i, age === "evidence-old" ? 0.4 : 0.5, age));
  }

  it("pairs each method's questions with the baseline's and gives the difference with its interval per evidence age", () => {
    const md = renderComparison(rows, "recent");
    expect(md).toContain("Questions: all 40 · evidence-old 30 · evidence-recent 10.");
    const line = md.split("\n").find((l) => l.startsWith("| EpiCache")) as string;
    const cells = line.split("|").map((c) => c.trim());
    // all: (30·0.4 + 10·0.5) / 40 = 42.5, +30.0 on average with an interval around it; old: +40.0
    // exactly (every pair +0.4); recent: +0.0 exactly.
    expect(cells[3]).toBe("42.5");
    const [mean, low, high] = (/^\+([\d.]+) \[\+([\d.]+), \+([\d.]+)\]$/.exec(cells[4]) ?? [])
      .slice(1)
      .map(Number);
    expect(mean).toBe(30);
    expect(low).toBeLessThan(30);
    expect(high).toBeGreaterThan(30);
    expect(cells.slice(5, 9)).toEqual([
      "40.0",
      "+40.0 [+40.0, +40.0]",
      "50.0",
      "+0.0 [+0.0, +0.0]",
    ]);
    const base = md.split("\n").find((l) => l.startsWith("| Recent")) as string;
    expect(base).toContain("–");
  });

  it("plots each method's difference and interval on all and old-evidence questions", () => {
    const svg = renderComparisonPlot(rows, "recent");
    expect(svg.startsWith("<svg")).toBe(true);
    // EpiCache has an interval in both panels; the baseline none.
    expect(svg.match(/data-method="epicache"/g)).toHaveLength(2);
    expect(svg).not.toContain('data-method="recent"');
    expect(svg).toContain("EpiCache @1024");
  });
});

describe("intervals against EpiCache", () => {
  const q = (
    method: string,
    budget: number | null,
    question: number,
    f1: number,
    kl: number,
  ): QuestionRow => ({
    conversation: "c",
    method,
    budget,
    question,
    category: "single-hop",
    age: "evidence-old",
    f1,
    kl,
    klGreedy: kl / 2,
    evidenceKept: 0.5,
    hit: null,
    routed: 0,
    answer: "",
  });
  // snapkv is 0.1 F1 below EpiCache on every question at 512, and KL 0.2 above; at 1024 it ties.
  const questions: QuestionRow[] = [];
  for (let i = 0; i < 20; i++) {
    questions.push(
      q("epicache", 512, i, 0.3 + (i % 3) * 0.1, 0.5),
      q("snapkv", 512, i, 0.2 + (i % 3) * 0.1, 0.7),
    );
    questions.push(q("epicache", 1024, i, 0.4, 0.3), q("snapkv", 1024, i, 0.4, 0.3));
  }
  const row = (method: string, budget: number | null): ResultRow => ({
    method,
    budget,
    conversation: "c",
    category: "all",
    questions: 20,
    f1: 0,
    kl: 0,
    routingHit: null,
    entries: 1,
    compression: 1,
    buildSeconds: 0,
    decodeMsPerToken: 0,
    peakRssBytes: 0,
  });

  it("pairs each row's questions with EpiCache's at the same budget", () => {
    const [snap512, snap1024, epi, full] = withIntervals(
      [row("snapkv", 512), row("snapkv", 1024), row("epicache", 512), row("full", null)],
      questions,
    );
    expect(snap512.f1Ci?.[0]).toBeCloseTo(-0.1, 9);
    expect(snap512.f1Ci?.[1]).toBeCloseTo(-0.1, 9);
    expect(snap512.klCi?.[0]).toBeCloseTo(0.2, 9);
    expect(snap1024.f1Ci).toEqual([0, 0]);
    expect(epi.f1Ci).toBeNull();
    expect(full.klCi).toBeNull();
    expect(
      pairedDifference(
        questions,
        "klGreedy",
        { method: "snapkv", budget: 512, conversation: null, category: "all" },
        "epicache",
      )?.mean,
    ).toBeCloseTo(0.1, 9);
    expect(
      pairedDifference(
        questions,
        "f1",
        { method: "snapkv", budget: 512, conversation: "other", category: "all" },
        "epicache",
      ),
    ).toBeNull();
  });

  it("renders means, paired differences, evidence kept", () => {
    const md = renderVsReference(questions, "epicache");
    expect(md).toContain(
      "| SnapKV   |    512 |        20 | 29.5 | −10.0 [−10.0, −10.0] |     0.700 | +0.200 [+0.200, +0.200] |       0.350 | +0.100 [+0.100, +0.100] |",
    );
    expect(md).toContain("50.0 %");
  });
});

describe("questions.jsonl", () => {
  it("holds one row per question of a method, budget and conversation: a later line replaces an earlier one", () => {
    const line = (method: string, question: number, f1: number, conversation = "c") =>
      JSON.stringify({
        conversation,
        method,
        budget: 1024,
        question,
        category: "temporal",
        age: "evidence-old",
        f1,
        kl: null,
        hit: null,
        routed: 0,
        answer: "",
      });
    const text = [
      line("snapkv", 0, 0.1),
      line("snapkv", 1, 0.2),
      line("snapkv", 0, 0.3),
      "",
      line("snapkv", 0, 0.5, "d"),
      line("kvzip", 0, 0.4),
    ].join("\n");
    expect(
      parseQuestionRows(text).map((r) => [r.conversation, r.method, r.question, r.f1]),
    ).toEqual([
      ["c", "snapkv", 1, 0.2],
      ["c", "snapkv", 0, 0.3],
      ["d", "snapkv", 0, 0.5],
      ["c", "kvzip", 0, 0.4],
    ]);
  });
});

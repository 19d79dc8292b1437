/**
 * `npm run bench:routing`: how often each way of routing a question to an episode picks one that holds
 * its evidence. Embeddings and clustering only, no language model: cheap. For every dataset and
 * history setting, each conversation is cut (or not) and segmented as `epicache eval` does, its
 * windows embedded with the embedder (all-MiniLM-L6-v2) and clustered into episodes as
 * `buildEpisodes` does, and every question that `eval` would ask is routed by:
 *
 *   centroid-cosine   `centroid`: the highest cosine to the L2-normalised episode centroids
 *   centroid-dot      the highest dot product with the raw centroids, the mean of the episode's unit
 *                     window vectors (the authors' utils/cluster.py: np.dot(question, centroid))
 *   window            `window`: the episode of the window nearest the question (cosine)
 *   vote-k            `vote`: the top k windows each vote for their episode; ties by summed cosine
 *   vote-k-sum        the top k windows' cosines summed per episode (a weighted vote)
 *   softmax-τ         every window votes exp((cos − best cos) / τ) (between window, τ → 0, and one
 *                     vote per window)
 *   lexical           `lexical`: the episode of the window scoring highest by BM25 on the question's
 *                     terms (textbook k1 = 1.2, b = 0.75, not tuned here); `window` for a question
 *                     none of whose terms is in any window
 *   window-int8, vote-k-int8, lexical-int8   the manifest rules with the window vectors quantised as stored
 *
 * The manifest rules (`centroid`, `window`, `vote`, `lexical`) run through `routeQuestion`, as the
 * runner and the edge route; the others are computed here.
 *
 * A hit is a question routed to an episode holding a window that holds one of its evidence turns (the
 * definition `eval` reports as routing hit). Also printed: top-1 and top-3 evidence-window recall, the
 * share of questions one of whose evidence windows is the nearest window, or among the nearest three.
 * Also counted: the questions `lexical` routes by `window` (no term in any window).
 * Prints a markdown table and writes the numbers with their config (bench/results/routing-hits.json).
 *
 *   npm run bench:routing -- --data ../shared/data/locomo/locomo-dev2.json --format locomo \
 *     --data ../shared/data/realtalk --format realtalk [--history cut,whole] [--max-context 7000]
 *     [--episodes 4] [--seed 42] [--model PATH] [--out bench/results/routing-hits.json]
 *
 * The cut history keeps the first sessions within --max-context tokens of the chat model's tokenizer
 * (only its tokenizer is read), as `eval --history cut` does.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { dirname, resolve } from "node:path";
import { parseArgs } from "node:util";
import {
  cutToSessions,
  decodeWindowVectors,
  encodeWindowVectors,
  lexicalTerms,
  routeQuestion,
  segmentWindows,
  type RoutingQuestion,
  type RoutingRule,
  type Vector,
} from "@epicache/shared";
import { openEmbedder } from "../src/embedder";
import { clusterEpisodes } from "../src/episodes/cluster";
import {
  DATASETS,
  HISTORIES,
  loadDataset,
  selectQuestions,
  type Dataset,
  type History,
} from "../src/eval";
import { openGguf } from "../src/gguf";
import { requireModel } from "../src/model-registry";
import { REPO_ROOT } from "../src/paths";
import { chatFrame } from "../src/press";
import { TextTokenizer } from "../src/tokenizer";

const { values } = parseArgs({
  options: {
    data: { type: "string", multiple: true },
    format: { type: "string", multiple: true },
    history: { type: "string", default: "cut,whole" },
    "max-context": { type: "string", default: "7000" },
    episodes: { type: "string", default: "4" },
    seed: { type: "string", default: "42" },
    model: { type: "string" },
    out: { type: "string", default: "bench/results/routing-hits.json" },
  },
});
const data = values.data ?? [];
const formats = values.format ?? [];
if (data.length === 0 || formats.length !== data.length)
  throw new Error("pass --data PATH --format locomo|realtalk once per dataset");
for (const f of formats)
  if (!(DATASETS as readonly string[]).includes(f))
    throw new Error(`--format ${f} is not one of ${DATASETS.join(", ")}`);
const histories = values.history.split(",").map((h) => h.trim());
for (const h of histories)
  if (!(HISTORIES as readonly string[]).includes(h))
    throw new Error(`--history ${h} is not one of ${HISTORIES.join(", ")}`);
const config = {
  datasets: data.map((path, i) => ({ path, format: formats[i] as Dataset })),
  histories: histories as History[],
  maxContext: Number(values["max-context"]),
  episodes: Number(values.episodes),
  seed: Number(values.seed),
  windowSize: 4,
  model: values.model ?? requireModel("chat"),
  voteK: [3, 5, 8],
};

/** A routing variant: a name and, per question (its vector and text), the episode it picks. */
interface Variant {
  name: string;
  description: string;
  pick(q: RoutingQuestion, c: ConversationData): number;
}

/** What routing reads of one conversation. */
interface ConversationData {
  /** [episodes] × [dim] unit centroids, and the raw means of the episodes' unit window vectors. */
  unitCentroids: Float32Array[];
  rawCentroids: Float32Array[];
  /** [windows] × [dim] unit window vectors, the same int8-quantised and read back, and each window's episode. */
  windows: Float32Array[];
  windowsInt8: Int8Array[];
  windowEpisodes: number[];
  /** [windows] × [terms]: each window's lexicalTerms, as the manifest stores them. */
  windowTerms: string[][];
}

/** A manifest rule, as the runner and the edge route by it. */
const route = (
  r: RoutingRule,
  q: RoutingQuestion,
  c: ConversationData,
  windows: readonly ArrayLike<number>[],
) =>
  routeQuestion(r, q, {
    centroids: c.unitCentroids,
    windows,
    windowEpisodes: c.windowEpisodes,
    windowTerms: c.windowTerms,
  });
const rule = (
  r: RoutingRule,
  q: RoutingQuestion,
  c: ConversationData,
  windows: readonly ArrayLike<number>[],
) => route(r, q, c, windows).episode;

/** The highest of per-episode scores, ties to the lower episode. */
function best(scores: readonly number[]): number {
  let e = 0;
  for (let i = 1; i < scores.length; i++) if (scores[i] > scores[e]) e = i;
  return e;
}
/** Per episode, Σ f(cosine) over its windows among the top k (all windows for k = ∞). */
function weighted(
  q: Vector,
  c: ConversationData,
  k: number,
  f: (cos: number, top: number) => number,
): number {
  const ranked = c.windows
    .map((w, j) => ({ j, s: dot(q, w) }))
    .sort((a, b) => b.s - a.s || a.j - b.j)
    .slice(0, k);
  const scores = new Array<number>(c.unitCentroids.length).fill(0);
  for (const { j, s } of ranked) scores[c.windowEpisodes[j]] += f(s, ranked[0].s);
  return best(scores);
}

const variants: Variant[] = [
  {
    name: "centroid-cosine",
    description: "`centroid`: cosine to the normalised centroids",
    pick: (q, c) => rule({ rule: "centroid" }, q, c, c.windows),
  },
  {
    name: "centroid-dot",
    description: "dot product with the raw centroids (the authors' code); not a manifest rule",
    pick: (q, c) => best(c.rawCentroids.map((m) => dot(q.vector, m))),
  },
  {
    name: "window",
    description: "`window`: the nearest window's episode",
    pick: (q, c) => rule({ rule: "window" }, q, c, c.windows),
  },
  ...config.voteK.flatMap((k): Variant[] => [
    {
      name: `vote-${k}`,
      description: `\`vote\` k = ${k}: the top ${k} windows vote, ties by summed cosine`,
      pick: (q, c) => rule({ rule: "vote", k }, q, c, c.windows),
    },
    {
      name: `vote-${k}-sum`,
      description: `the top ${k} windows' cosines summed per episode; not a manifest rule`,
      pick: (q, c) => weighted(q.vector, c, k, (s) => s),
    },
  ]),
  ...[0.01, 0.02, 0.05].map((tau): Variant => ({
    name: `softmax-${tau}`,
    description: `every window votes exp((cos − best cos) / ${tau}) for its episode; not a manifest rule`,
    pick: (q, c) =>
      weighted(q.vector, c, Number.POSITIVE_INFINITY, (s, top) => Math.exp((s - top) / tau)),
  })),
  {
    name: "lexical",
    description:
      "`lexical`: the episode of the window with the highest BM25 score (k1 = 1.2, b = 0.75), `window` when no question term is in any window",
    pick: (q, c) => rule({ rule: "lexical" }, q, c, c.windows),
  },
  {
    name: "window-int8",
    description: "`window` with the window vectors as the manifest stores them (int8)",
    pick: (q, c) => rule({ rule: "window" }, q, c, c.windowsInt8),
  },
  ...config.voteK.map((k): Variant => ({
    name: `vote-${k}-int8`,
    description: `\`vote\` k = ${k} with int8 window vectors`,
    pick: (q, c) => rule({ rule: "vote", k }, q, c, c.windowsInt8),
  })),
  {
    name: "lexical-int8",
    description: "`lexical` with int8 window vectors for its fallback, as the manifest stores them",
    pick: (q, c) => rule({ rule: "lexical" }, q, c, c.windowsInt8),
  },
];

interface Tally {
  questions: number;
  hits: Record<string, number>;
  top1: number;
  top3: number;
  /** Questions `lexical` routed by `window`: none of their terms is in any window. */
  lexicalFallbacks: number;
}
const emptyTally = (): Tally => ({
  questions: 0,
  hits: Object.fromEntries(variants.map((v) => [v.name, 0])),
  top1: 0,
  top3: 0,
  lexicalFallbacks: 0,
});
const add = (a: Tally, b: Tally) => {
  a.questions += b.questions;
  for (const v of variants) a.hits[v.name] += b.hits[v.name];
  a.top1 += b.top1;
  a.top3 += b.top3;
  a.lexicalFallbacks += b.lexicalFallbacks;
};

const ggufFile = openGguf(config.model);
const tokenizer = TextTokenizer.fromGguf(ggufFile);
ggufFile.close();
const frame = chatFrame(tokenizer);
const count = (text: string) => tokenizer.encode(text).length;
const embedder = await openEmbedder(undefined, { threads: 1 });
const started = performance.now();

const results: Array<{
  dataset: string;
  format: Dataset;
  history: History;
  total: Tally;
  conversations: Array<{ id: string; sessions: string; windows: number } & Tally>;
}> = [];
for (const { path, format } of config.datasets) {
  const conversations = loadDataset(path, format, null);
  for (const history of config.histories) {
    const total = emptyTally();
    const per: (typeof results)[number]["conversations"] = [];
    for (const { conversation, qa } of conversations) {
      const kept =
        history === "cut"
          ? cutToSessions(conversation, config.maxContext - frame.open.length, count)
          : conversation;
      const { questions } = selectQuestions(qa, kept, format);
      const windows = segmentWindows(kept, config.windowSize);
      const vectors = await embedder.embed(windows.map((w) => w.text));
      const clusters = clusterEpisodes(vectors, config.episodes, { seed: config.seed });
      const c: ConversationData = {
        unitCentroids: clusters.centroids,
        rawCentroids: clusters.centroids.map((_, e) =>
          meanOf(vectors.filter((_, i) => clusters.assignments[i] === e)),
        ),
        windows: vectors,
        windowsInt8: decodeWindowVectors(encodeWindowVectors(vectors), embedder.dimension),
        windowEpisodes: clusters.assignments,
        windowTerms: windows.map((w) => lexicalTerms(w.text)),
      };
      const windowOf = new Map<string, number>();
      windows.forEach((w) => w.turnIds.forEach((id) => windowOf.set(id, w.index)));
      const qVectors = await embedder.embed(questions.map((q) => q.question));
      const tally = emptyTally();
      questions.forEach((q, i) => {
        const evidence = new Set(q.evidence.map((id) => windowOf.get(id) ?? -1));
        const holds = (episode: number) =>
          [...evidence].some((w) => clusters.assignments[w] === episode);
        const asked: RoutingQuestion = { vector: qVectors[i], text: q.question };
        tally.questions++;
        for (const v of variants) if (holds(v.pick(asked, c))) tally.hits[v.name]++;
        if (route({ rule: "lexical" }, asked, c, c.windows).scoredBy === "window")
          tally.lexicalFallbacks++;
        const ranked = vectors
          .map((w, j) => ({ j, s: dot(qVectors[i], w) }))
          .sort((a, b) => b.s - a.s || a.j - b.j);
        if (evidence.has(ranked[0].j)) tally.top1++;
        if (ranked.slice(0, 3).some((r) => evidence.has(r.j))) tally.top3++;
      });
      per.push({
        id: conversation.id,
        sessions: `${kept.sessions.length}/${conversation.sessions.length}`,
        windows: windows.length,
        ...tally,
      });
      add(total, tally);
      process.stderr.write(
        `${format} ${history} ${conversation.id}: ${kept.sessions.length}/${conversation.sessions.length} sessions, ${windows.length} windows, ${questions.length} questions, lexical ${pct(tally.hits.lexical, tally.questions)}, window ${pct(tally.hits.window, tally.questions)}, centroid ${pct(tally.hits["centroid-cosine"], tally.questions)}\n`,
      );
    }
    results.push({ dataset: path, format, history, total, conversations: per });
  }
}
const embedderId = embedder.modelId;
await embedder.release();

function meanOf(vs: readonly Float32Array[]): Float32Array {
  const m = new Float32Array(vs[0].length);
  for (const v of vs) for (let d = 0; d < m.length; d++) m[d] += v[d] / vs.length;
  return m;
}
function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let d = 0; d < a.length; d++) s += a[d] * b[d];
  return s;
}
function pct(n: number, of: number): string {
  return of === 0 ? "—" : `${((100 * n) / of).toFixed(1)} %`;
}

const cpu =
  /model name\s*:\s*(.*)/.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ??
  cpus()[0]?.model ??
  "unknown";
const out = resolve(REPO_ROOT, values.out);
mkdirSync(dirname(out), { recursive: true });
writeFileSync(
  out,
  `${JSON.stringify(
    {
      config: { ...config, model: config.model.replace(`${REPO_ROOT}/`, ""), embedder: embedderId },
      machine: { cpu, cores: cpus().length },
      seconds: (performance.now() - started) / 1000,
      variants: variants.map(({ name, description }) => ({ name, description })),
      results: results.map((r) => ({
        ...r,
        rates: Object.fromEntries(
          variants.map((v) => [v.name, r.total.hits[v.name] / r.total.questions]),
        ),
        top1: r.total.top1 / r.total.questions,
        top3: r.total.top3 / r.total.questions,
        lexicalFallbacks: r.total.lexicalFallbacks / r.total.questions,
      })),
    },
    null,
    1,
  )}\n`,
);

const columns = results.map((r) => `${r.format} ${r.history} (${r.total.questions} q)`);
const lines = [
  `| Rule | ${columns.join(" | ")} |`,
  `| :-- | ${columns.map(() => "--:").join(" | ")} |`,
  ...variants.map(
    (v) =>
      `| ${v.name} | ${results.map((r) => pct(r.total.hits[v.name], r.total.questions)).join(" | ")} |`,
  ),
  `| evidence window top-1 | ${results.map((r) => pct(r.total.top1, r.total.questions)).join(" | ")} |`,
  `| evidence window top-3 | ${results.map((r) => pct(r.total.top3, r.total.questions)).join(" | ")} |`,
  `| lexical routed by window (no term in any window) | ${results.map((r) => pct(r.total.lexicalFallbacks, r.total.questions)).join(" | ")} |`,
];
process.stdout.write(
  `${lines.join("\n")}\n\nwrote ${out} in ${((performance.now() - started) / 1000).toFixed(0)} s (${cpu}, ${cpus().length} cores)\n`,
);

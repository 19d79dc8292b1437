/**
 * `npm run bench:drift`: where an update's drift refusal should sit. An update is refused (a full build
 * instead) when the new windows' mean cosine to the episodes they join falls below a share of the
 * clustering's own cohesion (episodes/drift.ts). The share should let a conversation's own next session
 * through and catch text about something else. Embeddings and clustering only, no language model.
 *
 * For every conversation and every k from 2 to n−1, its first k sessions are segmented and clustered as
 * a full build does, and two continuations are measured against that clustering, as an update would:
 *   own       session k+1 of the same conversation
 *   foreign   session k+1 (or its last) of the next conversation in the list: another chat's people and
 *             topics, the strongest drift there is
 * Reported: each ratio's quantiles, and for each threshold the share of own continuations refused (a
 * full build for nothing) and of foreign ones caught. Prints a markdown table and writes
 * bench/results/drift.json.
 *
 *   npm run bench:drift -- --data ../shared/data/locomo/locomo-dev2.json --format locomo \
 *     --data ../shared/data/realtalk --format realtalk [--episodes 4] [--seed 42] [--out bench/results/drift.json]
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { dirname, resolve } from "node:path";
import { parseArgs } from "node:util";
import { segmentWindows, type Conversation } from "@epicache/shared";
import { openEmbedder } from "../src/embedder";
import { clusterEpisodes } from "../src/episodes/cluster";
import { clusteringCohesion, joinNearest } from "../src/episodes/drift";
import { DATASETS, loadDataset, type Dataset } from "../src/eval";
import { REPO_ROOT } from "../src/paths";

const { values } = parseArgs({
  options: {
    data: { type: "string", multiple: true },
    format: { type: "string", multiple: true },
    episodes: { type: "string", default: "4" },
    seed: { type: "string", default: "42" },
    out: { type: "string", default: "bench/results/drift.json" },
  },
});
const paths = values.data ?? [];
if (paths.length === 0 || paths.length !== (values.format ?? []).length)
  throw new Error("pass --data PATH --format locomo|realtalk, once per dataset");
const formats = (values.format ?? []).map((f) => {
  if (!(DATASETS as readonly string[]).includes(f))
    throw new Error(`--format ${f}: one of ${DATASETS.join(", ")}`);
  return f as Dataset;
});
const episodes = Number(values.episodes);
const seed = Number(values.seed);
const embedder = await openEmbedder();

const conversations: Conversation[] = paths.flatMap((p, i) =>
  loadDataset(resolve(p), formats[i], null).map((c) => c.conversation),
);
// Every conversation's windows embedded once: a history of k sessions holds the windows whose turns
// all lie in them; its continuation, the windows up to the end of session k+1 (the first of them
// completing the history's unfinished window, as an update's does).
const windowsEnd = (c: Conversation, k: number) =>
  Math.floor(c.sessions.slice(0, k).reduce((n, s) => n + s.turns.length, 0) / 4);
const vectorsOf = new Map<Conversation, Float32Array[]>();
for (const c of conversations)
  vectorsOf.set(c, await embedder.embed(segmentWindows(c, 4).map((w) => w.text)));
const sessionVectors = async (c: Conversation, s: number) =>
  embedder.embed(segmentWindows({ ...c, sessions: [c.sessions[s]] }, 4).map((w) => w.text));

const own: number[] = [];
const foreign: number[] = [];
for (const [ci, conversation] of conversations.entries()) {
  const other = conversations[(ci + 1) % conversations.length];
  const all = vectorsOf.get(conversation) ?? [];
  for (let k = 2; k < conversation.sessions.length; k++) {
    const vectors = all.slice(0, windowsEnd(conversation, k));
    const next = all.slice(vectors.length, windowsEnd(conversation, k + 1));
    if (vectors.length < episodes || next.length === 0) continue;
    const clusters = clusterEpisodes(vectors, episodes, { seed });
    const groups = clusters.centroids.map((_, e) => ({
      windows: clusters.assignments.flatMap((a, i) => (a === e ? [i] : [])),
    }));
    const base = clusteringCohesion(vectors, groups);
    if (base === 0) continue;
    const ratioOf = (added: readonly Float32Array[]) => {
      const running = {
        sums: groups.map((g) => {
          const sum = new Float32Array(embedder.dimension);
          for (const w of g.windows) vectors[w].forEach((x, d) => (sum[d] += x));
          return sum;
        }),
        counts: groups.map((g) => g.windows.length),
        members: groups.map((g) => new Set(g.windows)),
      };
      return joinNearest(running, added, vectors.length) / base;
    };
    own.push(ratioOf(next));
    foreign.push(ratioOf(await sessionVectors(other, Math.min(k, other.sessions.length - 1))));
  }
  process.stderr.write(`${conversation.id}: ${conversation.sessions.length} sessions\n`);
}
await embedder.release();

const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.round(q * (s.length - 1))))];
};
const share = (xs: number[], f: (x: number) => boolean) => xs.filter(f).length / xs.length;
const thresholds = [0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95];
const rows = thresholds.map((t) => ({
  threshold: t,
  ownRefused: share(own, (x) => x < t),
  foreignCaught: share(foreign, (x) => x < t),
}));
const quantiles = Object.fromEntries(
  [
    ["own", own],
    ["foreign", foreign],
  ].map(([name, xs]) => [
    name,
    Object.fromEntries(
      [0.05, 0.25, 0.5, 0.75, 0.95].map((q) => [`p${q * 100}`, quantile(xs as number[], q)]),
    ),
  ]),
);
const cpu =
  /model name\s*:\s*(.*)/.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ??
  cpus()[0]?.model ??
  "unknown";
const out = resolve(REPO_ROOT, values.out);
mkdirSync(dirname(out), { recursive: true });
writeFileSync(
  out,
  `${JSON.stringify({ config: { data: paths, formats, episodes, seed, conversations: conversations.length }, updates: own.length, quantiles, rows }, null, 1)}\n`,
);
const pct = (x: number) => `${(x * 100).toFixed(1)} %`;
const q = (name: string) =>
  (Object.values(quantiles[name]) as number[]).map((x) => x.toFixed(3)).join(" / ");
process.stdout.write(
  [
    `${own.length} updates over ${conversations.length} conversations; ratio of new windows' cohesion to the clustering's, p5 / p25 / p50 / p75 / p95:`,
    `  own session      ${q("own")}`,
    `  foreign session  ${q("foreign")}`,
    "",
    "| threshold | own sessions refused | foreign sessions caught |",
    "| --: | --: | --: |",
    ...rows.map((r) => `| ${r.threshold} | ${pct(r.ownRefused)} | ${pct(r.foreignCaught)} |`),
  ].join("\n") + `\n\nwrote ${out} (${cpu})\n`,
);

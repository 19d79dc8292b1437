/**
 * `npm run bench:update`: what adding one session costs as a conversation grows, against building
 * everything again. For a conversation of n sessions and each point p (25 %, 50 %, 100 % of n):
 * k = round(p·n) sessions; `build --sessions 1-(k−1)`, then `update --sessions 1-k` (one session added)
 * and, for comparison, `build --sessions 1-k` from nothing. Each step runs the real command in its own
 * process, as a user does, and reports its wall time, its CPU time (user + system over all threads:
 * the work done, which other load on the machine stretches far less than wall time) and peak RSS (the
 * command's own --json). Prints a table and writes bench/results/update.json.
 *
 * The steps take an hour or more on a small machine: each one's result is kept beside its store
 * (.epicache/bench-update/), and a rerun with the same settings goes on from the first step not done.
 * The folder is removed once every point is measured.
 *
 *   npm run bench:update -- --data ../shared/data/locomo/locomo-dev2.json --format locomo --sample conv-26
 *     [--points 25,50,100] [--budget 1024] [--block 512] [--out bench/results/update.json]
 */
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { loadConversation } from "@epicache/shared";
import { DEFAULT_N_MEDOID } from "../src/episodes";
import { REPO_ROOT } from "../src/paths";
import { CLI } from "../src/testing/run-cli";

const { values } = parseArgs({
  options: {
    data: { type: "string" },
    format: { type: "string" },
    sample: { type: "string" },
    points: { type: "string", default: "25,50,100" },
    budget: { type: "string", default: "1024" },
    block: { type: "string", default: "512" },
    out: { type: "string", default: "bench/results/update.json" },
  },
});
if (!values.data) throw new Error("pass --data FILE (and --format, --sample for LoCoMo)");
const file = resolve(values.data);
const { conversation } = loadConversation(readFileSync(file, "utf8"), {
  format: values.format as "locomo" | "realtalk" | undefined,
  sampleId: values.sample,
});
const n = conversation.sessions.length;
const points = values.points.split(",").map((p) => Number(p) / 100);
const source = [
  "--conversation",
  file,
  ...(values.format ? ["--format", values.format] : []),
  ...(values.sample ? ["--sample", values.sample] : []),
];
const dir = join(
  REPO_ROOT,
  ".epicache",
  "bench-update",
  `${values.sample ?? "conversation"}-b${values.budget}-B${values.block}`,
);
mkdirSync(dir, { recursive: true });
// Records of another conversation or other settings (the build defaults' window count among them)
// are not this run's.
const settings = JSON.stringify({
  data: file,
  format: values.format ?? null,
  sample: values.sample ?? null,
  budget: values.budget,
  block: values.block,
  nMedoid: DEFAULT_N_MEDOID,
});
const settingsPath = join(dir, "settings.json");
if (existsSync(settingsPath) && readFileSync(settingsPath, "utf8") !== settings)
  throw new Error(`${dir} holds steps of other settings: remove it, or finish that run`);
writeFileSync(settingsPath, settings);

/** A step's result, from its record when an earlier run finished it, else run and recorded. */
async function step(
  record: string,
  args: string[],
): Promise<{ seconds: number; json: Record<string, unknown> }> {
  if (existsSync(record))
    return JSON.parse(readFileSync(record, "utf8")) as {
      seconds: number;
      json: Record<string, unknown>;
    };
  const result = await run(args);
  writeFileSync(record, `${JSON.stringify(result)}\n`);
  return result;
}

/** One command in its own process; its --json and the wall time. */
async function run(args: string[]): Promise<{ seconds: number; json: Record<string, unknown> }> {
  const t0 = performance.now();
  const { status, stdout, stderr } = await new Promise<{
    status: number | null;
    stdout: string;
    stderr: string;
  }>((done, fail) => {
    const child = spawn(process.execPath, [CLI, ...args, "--json"], {
      cwd: REPO_ROOT,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "",
      err = "";
    child.stdout.setEncoding("utf8").on("data", (s: string) => (out += s));
    child.stderr.setEncoding("utf8").on("data", (s: string) => (err += s));
    child.on("error", fail);
    child.on("close", (code) => done({ status: code, stdout: out, stderr: err }));
  });
  if (status !== 0) throw new Error(`epicache ${args.join(" ")} failed:\n${stderr}`);
  return {
    seconds: (performance.now() - t0) / 1000,
    json: JSON.parse(stdout) as Record<string, unknown>,
  };
}

interface Step {
  seconds: number;
  cpuSeconds: number;
  peakRssBytes: unknown;
}
const rows: Array<{
  point: number;
  sessions: number;
  contextTokens: number;
  newTokens: number;
  update: Step & { kind: unknown };
  full: Step;
}> = [];
const measured = (r: { seconds: number; json: Record<string, unknown> }): Step => ({
  seconds: r.seconds,
  cpuSeconds: r.json.cpuSeconds as number,
  peakRssBytes: r.json.peakRssBytes,
});
for (const p of points) {
  const k = Math.min(n, Math.max(3, Math.round(p * n)));
  const store = join(dir, `store-${k}`);
  const opts = ["--budget", values.budget, "--block", values.block];
  const base = await step(join(dir, `${k}.base.json`), [
    "build",
    ...source,
    "--sessions",
    `1-${k - 1}`,
    "--id",
    "bench",
    "--out",
    store,
    ...opts,
  ]);
  const update = await step(join(dir, `${k}.update.json`), [
    "update",
    ...source,
    "--sessions",
    `1-${k}`,
    "--id",
    "bench",
    "--out",
    store,
  ]);
  // Stopped after the update published and before its record: the store holds the update already.
  if (update.json.kind === "none")
    throw new Error(
      `${store} was updated by a run that stopped before recording it: remove ${dir} and run again`,
    );
  const full = await step(join(dir, `${k}.full.json`), [
    "build",
    ...source,
    "--sessions",
    `1-${k}`,
    "--id",
    "fresh",
    "--out",
    store,
    ...opts,
  ]);
  rows.push({
    point: p,
    sessions: k,
    contextTokens: full.json.contextTokens as number,
    newTokens: (full.json.contextTokens as number) - (base.json.contextTokens as number),
    update: { ...measured(update), kind: update.json.kind },
    full: measured(full),
  });
  process.stderr.write(
    `${k}/${n} sessions: update ${update.seconds.toFixed(0)} s, ${measured(update).cpuSeconds.toFixed(0)} CPU s (${String(update.json.kind)}); full build ${full.seconds.toFixed(0)} s, ${measured(full).cpuSeconds.toFixed(0)} CPU s\n`,
  );
}
rmSync(dir, { recursive: true, force: true });
const cpu =
  /model name\s*:\s*(.*)/.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ??
  cpus()[0]?.model ??
  "unknown";
const out = resolve(REPO_ROOT, values.out);
mkdirSync(dirname(out), { recursive: true });
writeFileSync(
  out,
  `${JSON.stringify({ config: { data: values.data, sample: values.sample ?? null, budget: Number(values.budget), block: Number(values.block), nMedoid: DEFAULT_N_MEDOID, sessions: n }, machine: { cpu, cores: cpus().length }, rows }, null, 1)}\n`,
);
const mib = (b: unknown) => (typeof b === "number" ? `${(b / 2 ** 20).toFixed(0)} MiB` : "–");
process.stdout.write(
  [
    "| history | sessions | context tokens | new tokens | add one session: wall, CPU | per new token | kind | full build: wall, CPU | full / update (CPU) | peak RSS update / full |",
    "| --: | --: | --: | --: | --: | --: | :-- | --: | --: | --: |",
    ...rows.map(
      (r) =>
        `| ${(r.point * 100).toFixed(0)} % | ${r.sessions} | ${r.contextTokens} | ${r.newTokens} | ${r.update.seconds.toFixed(0)} s, ${r.update.cpuSeconds.toFixed(0)} s | ${((1000 * r.update.seconds) / r.newTokens).toFixed(0)} ms | ${String(r.update.kind)} | ${r.full.seconds.toFixed(0)} s, ${r.full.cpuSeconds.toFixed(0)} s | ${(r.full.cpuSeconds / r.update.cpuSeconds).toFixed(1)}× | ${mib(r.update.peakRssBytes)} / ${mib(r.full.peakRssBytes)} |`,
    ),
  ].join("\n") + `\n\nwrote ${out} (${cpu}, ${cpus().length} cores)\n`,
);

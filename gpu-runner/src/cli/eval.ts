/** `epicache eval`: methods × budgets × conversations on LoCoMo or REALTALK, in the paper's layout. */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import {
  DEFAULT_ROUTING,
  DEFAULT_VOTE_K,
  EpicacheError,
  parseMedoidCount,
  ROUTING_RULES,
  type RoutingRule,
} from "@epicache/shared";
import { openEmbedder } from "../embedder";
import { DEFAULT_N_MEDOID } from "../episodes";
import {
  DATASETS,
  EVAL_METHODS,
  HISTORIES,
  isEvalMethod,
  parseQuestionRows,
  renderComparison,
  renderComparisonPlot,
  renderPlot,
  renderTable,
  renderVsReference,
  runEval,
  type EvalConfig,
  type ResultRow,
} from "../eval";
import { NUMERICS, openChatModel } from "../runtime";
import { requireModel } from "../model-registry";
import { POSITION_MODES } from "../prefill";
import { choices, enumOption, isPositiveInt, numberOption } from "./args";
import { formatSeconds, Progress } from "./progress";

export const usage = `\
  eval --data FILE --out DIR [--format ${choices(DATASETS, "locomo")}] [--conversations IDS] [--methods M,…]
       [--budgets 512,1024,2048] [--history ${choices(HISTORIES)}] [--max-context 7000] [--positions ${choices(POSITION_MODES)}]
       [--episodes 4] [--routing ${choices(ROUTING_RULES, DEFAULT_ROUTING.rule)}] [--vote-k ${DEFAULT_VOTE_K}] [--n-medoid ${DEFAULT_N_MEDOID}] [--block 512] [--max-answer-tokens 32] [--seed 42]
       [--numerics ${choices(NUMERICS, "fast")}] [--model PATH] [--threads N]
  eval --out DIR --report          the reports of what DIR holds so far (a run stopped part way)
                                     F1 and KL(full ‖ method) per method × budget × category
                                     (and evidence-old / evidence-recent: all evidence before the
                                     last --max-context tokens, or not): results.jsonl,
                                     questions.jsonl, table.md, comparison.md (F1 against recent,
                                     paired, 95% intervals), vs-epicache.md (F1, KL and KL along
                                     the full cache's own answer against EpiCache, paired; evidence
                                     kept), f1.svg, kl.svg. --history whole
                                     reads every session; cut, the first within --max-context
                                     tokens (KL needs the history within the model's window).
                                     EpiCache routes by --routing and takes --n-medoid windows
                                     (as build) unless its name says; questions.jsonl records
                                     every rule's routing hit side by side.
                                     M (default all): ${choices(EVAL_METHODS, undefined, ", ")};
                                     options after a name for sweeps: epicache:n-medoid=3,
                                     epicache:n-medoid=25%:alloc=output, snapkv:positions=original;
                                     epicache:updates=session builds the first session, then updates
                                     once per session as the service would, and answers from the last
                                     version. --threads: onnxruntime's threads for the model and the embedder
                                     (default every core; 1 lets two evaluations share a 2-core machine)
`;

export async function evalCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      data: { type: "string" },
      format: { type: "string" },
      conversations: { type: "string" },
      methods: { type: "string" },
      budgets: { type: "string" },
      "max-context": { type: "string" },
      episodes: { type: "string" },
      block: { type: "string" },
      "max-answer-tokens": { type: "string" },
      seed: { type: "string" },
      out: { type: "string" },
      model: { type: "string" },
      numerics: { type: "string" },
      history: { type: "string" },
      positions: { type: "string" },
      report: { type: "boolean", default: false },
      routing: { type: "string" },
      "vote-k": { type: "string" },
      "n-medoid": { type: "string" },
      threads: { type: "string" },
    },
  });
  if (!values.out) throw new EpicacheError("invalid_argument", "eval needs --out DIR");
  if (values.report) {
    process.stdout.write(writeReports(values.out));
    return 0;
  }
  if (!values.data)
    throw new EpicacheError(
      "invalid_argument",
      "eval needs --data FILE (a LoCoMo or REALTALK file, or a folder of REALTALK files)",
    );
  const format = enumOption("format", values.format, DATASETS, "locomo");
  const methods = (values.methods ?? EVAL_METHODS.join(","))
    .split(",")
    .map((m) => m.trim())
    .filter(Boolean)
    .map((m) => (isEvalMethod(m) ? m : enumOption("methods", m, EVAL_METHODS)));
  const numerics = enumOption("numerics", values.numerics, NUMERICS, "fast");
  const budgets = (values.budgets ?? "512,1024,2048")
    .split(",")
    .map((b) => numberOption("budgets", b, 0, isPositiveInt));
  const rule = enumOption("routing", values.routing, ROUTING_RULES, DEFAULT_ROUTING.rule);
  if (values["vote-k"] !== undefined && rule !== "vote")
    throw new EpicacheError("invalid_argument", "--vote-k goes with --routing vote");
  const routing: RoutingRule =
    rule === "vote"
      ? { rule, k: numberOption("vote-k", values["vote-k"], DEFAULT_VOTE_K, isPositiveInt) }
      : { rule };
  const config: EvalConfig = {
    data: values.data,
    format,
    methods,
    budgets,
    history: enumOption("history", values.history, HISTORIES, "whole"),
    positions: enumOption("positions", values.positions, POSITION_MODES, "compact"),
    conversations: values.conversations
      ? values.conversations.split(",").map((c) => c.trim())
      : null,
    maxContext: numberOption("max-context", values["max-context"], 7000, isPositiveInt),
    episodes: numberOption("episodes", values.episodes, 4, isPositiveInt),
    routing,
    nMedoid:
      values["n-medoid"] === undefined ? DEFAULT_N_MEDOID : parseMedoidCount(values["n-medoid"]),
    block: numberOption("block", values.block, 512, isPositiveInt),
    maxAnswerTokens: numberOption(
      "max-answer-tokens",
      values["max-answer-tokens"],
      32,
      isPositiveInt,
    ),
    seed: numberOption("seed", values.seed, 42, (n) => Number.isInteger(n) && n >= 0),
    numerics,
  };
  const threads = numberOption("threads", values.threads, 0, isPositiveInt);
  const progress = new Progress("eval");
  const log = (m: string) => progress.line(m);
  const model = await openChatModel(
    values.model ?? process.env.EPICACHE_CHAT_MODEL ?? requireModel("chat"),
    { numerics, log, runtime: { executionProvider: "cpu", threads } },
  );
  const embedder = await openEmbedder(undefined, { threads });
  const started = performance.now();
  try {
    let current = "";
    await runEval(model, embedder, config, values.out, {
      log,
      onProgress: ({ job, jobs, label, stage, etaSeconds, step }) => {
        // One stage per job and step: "job 3/14, kvzip @1024 on conv-26: build", then ": answer".
        const name = `job ${job}/${jobs}, ${label}: ${stage}`;
        if (name !== current) {
          current = name;
          progress.stage(
            name,
            etaSeconds === null ? undefined : `all jobs: ETA ${formatSeconds(etaSeconds)}`,
          );
        }
        if (step) progress.update(step.done, step.total, step.unit);
      },
    });
    progress.done();
    process.stdout.write(
      `${writeReports(values.out)}in ${formatSeconds((performance.now() - started) / 1000)}\n`,
    );
    return 0;
  } finally {
    await model.decoder.release();
    await embedder.release();
  }
}

/** Writes table.md, f1.svg, kl.svg and (with `recent` among the methods) comparison.md from what `out` holds; returns a summary. */
function writeReports(out: string): string {
  const lines = (name: string) => {
    const path = join(out, name);
    return existsSync(path)
      ? readFileSync(path, "utf8")
          .split("\n")
          .filter((l) => l.trim() !== "")
      : [];
  };
  const rows = lines("results.jsonl").map((l) => JSON.parse(l) as ResultRow);
  if (rows.length === 0)
    throw new EpicacheError("invalid_argument", `${out} holds no results (results.jsonl)`);
  const config = JSON.parse(readFileSync(join(out, "config.json"), "utf8")) as EvalConfig;
  const title = `${config.data} (${config.format}), ${config.history ?? "cut"} history, max context ${config.maxContext}`;
  writeFileSync(join(out, "table.md"), renderTable(rows, { title }));
  writeFileSync(join(out, "f1.svg"), renderPlot(rows, "f1"));
  writeFileSync(join(out, "kl.svg"), renderPlot(rows, "kl"));
  const questions = parseQuestionRows(lines("questions.jsonl").join("\n"));
  const written = ["table.md", "f1.svg", "kl.svg"];
  let comparison = "";
  if (questions.some((q) => q.method === "recent")) {
    comparison = renderComparison(questions, "recent", { title });
    writeFileSync(join(out, "comparison.md"), comparison);
    writeFileSync(join(out, "comparison.svg"), renderComparisonPlot(questions, "recent"));
    written.push("comparison.md", "comparison.svg");
  }
  if (questions.some((q) => q.method === "epicache")) {
    writeFileSync(join(out, "vs-epicache.md"), renderVsReference(questions, "epicache", { title }));
    written.push("vs-epicache.md");
  }
  return `${renderTable(rows)}\n${comparison}\nwrote ${written.map((f) => join(out, f)).join(", ")} `;
}

/** `epicache eval`: methods × budgets × conversations on LoCoMo or REALTALK, in the paper's layout. */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { EpicacheError } from "@epicache/shared";
import { openEmbedder } from "../embedder";
import { EVAL_METHODS, renderPlot, renderTable, runEval, type Dataset, type EvalConfig } from "../eval";
import { openChatModel, type Numerics } from "../model";
import { requireModel } from "../models";
import { isPositiveInt, numberOption } from "./args";

export async function evalCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv, strict: true,
    options: {
      data: { type: "string" }, format: { type: "string" }, conversations: { type: "string" }, methods: { type: "string" },
      budgets: { type: "string" }, "max-context": { type: "string" }, episodes: { type: "string" }, block: { type: "string" },
      "max-answer-tokens": { type: "string" }, seed: { type: "string" }, out: { type: "string" }, model: { type: "string" }, numerics: { type: "string" },
    },
  });
  if (!values.data) throw new EpicacheError("invalid_argument", "eval needs --data FILE (a LoCoMo or REALTALK file, or a folder of REALTALK files)");
  if (!values.out) throw new EpicacheError("invalid_argument", "eval needs --out DIR");
  const format = (values.format ?? "locomo") as Dataset;
  if (format !== "locomo" && format !== "realtalk") throw new EpicacheError("invalid_argument", `--format is locomo or realtalk, not ${JSON.stringify(values.format)}`);
  const methods = (values.methods ?? EVAL_METHODS.join(",")).split(",").map((m) => m.trim()).filter(Boolean);
  for (const m of methods) if (!(EVAL_METHODS as readonly string[]).includes(m)) throw new EpicacheError("invalid_argument", `--methods: "${m}" is not one of ${EVAL_METHODS.join(", ")}`);
  const budgets = (values.budgets ?? "512,1024,2048").split(",").map((b) => numberOption("budgets", b, 0, isPositiveInt));
  const config: EvalConfig = {
    data: values.data, format, methods, budgets,
    conversations: values.conversations ? values.conversations.split(",").map((c) => c.trim()) : null,
    maxContext: numberOption("max-context", values["max-context"], 7000, isPositiveInt),
    episodes: numberOption("episodes", values.episodes, 4, isPositiveInt),
    block: numberOption("block", values.block, 512, isPositiveInt),
    maxAnswerTokens: numberOption("max-answer-tokens", values["max-answer-tokens"], 32, isPositiveInt),
    seed: numberOption("seed", values.seed, 42, (n) => Number.isInteger(n) && n >= 0),
    numerics: values.numerics ?? "fast",
  };
  const log = (m: string) => process.stderr.write(`${tty ? "\r\x1b[K" : ""}${m}\n`);
  const tty = process.stderr.isTTY;
  const model = await openChatModel(values.model ?? process.env.EPICACHE_CHAT_MODEL ?? requireModel("chat"), { numerics: config.numerics as Numerics, log });
  const embedder = await openEmbedder();
  const started = performance.now();
  try {
    const rows = await runEval(model, embedder, config, values.out, {
      log,
      onProgress: ({ job, jobs, label, stage, etaSeconds }) => {
        const bar = "█".repeat(Math.round(((job - 1) / jobs) * 30)).padEnd(30, "░");
        const eta = etaSeconds === null ? "" : `, ETA ${formatSeconds(etaSeconds)}`;
        const line = `eval ${bar} job ${job}/${jobs}: ${label}, ${stage}${eta}`;
        if (tty) process.stderr.write(`\r\x1b[K${line}`);
        else if (stage === "build") process.stderr.write(`${line}\n`);
      },
    });
    if (tty) process.stderr.write("\r\x1b[K");
    writeFileSync(join(values.out, "table.md"), renderTable(rows, { title: `${config.data} (${config.format}), max context ${config.maxContext}` }));
    writeFileSync(join(values.out, "f1.svg"), renderPlot(rows, "f1"));
    writeFileSync(join(values.out, "kl.svg"), renderPlot(rows, "kl"));
    process.stdout.write(`${renderTable(rows)}\nwrote ${values.out}/results.jsonl, table.md, f1.svg, kl.svg in ${formatSeconds((performance.now() - started) / 1000)}\n`);
    return 0;
  } finally {
    await model.decoder.release();
    await embedder.release();
  }
}

function formatSeconds(s: number): string {
  const m = Math.floor(s / 60);
  return m > 0 ? `${m} min ${Math.round(s % 60)} s` : `${Math.round(s)} s`;
}

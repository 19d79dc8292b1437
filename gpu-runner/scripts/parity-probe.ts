/**
 * Next-token distributions after each parity prompt (and a ~600-token conversation prompt), from the
 * float64 reference forward, this runtime's numerics and llama.cpp with flash attention off and on;
 * prints the largest probability difference of each against the reference and whether the top token
 * agrees. `npx tsx gpu-runner/scripts/parity-probe.ts [MODEL.gguf] [--numerics exact,fast,ggml]
 * [--ids 1,2,3] [--no-reference]`. Works on GGUF copies cut by gguf-truncate.ts too.
 */
import { writeFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { openGguf } from "../src/gguf";
import { configFromGguf, openChatModel, type Numerics } from "../src/runtime";
import { ggufWeights } from "../src/runtime/weights";
import { requireModel } from "../src/model-registry";
import { LlamaCpp } from "../src/parity/llama-cpp";
import { maxProbDiff, ourNextToken, softmax, top } from "../src/parity/next-token";
import { REFERENCE_PROMPTS, promptIds } from "../src/parity/parity";
import { REPO_ROOT } from "../src/paths";
import { keptWeights, referenceForward } from "../src/testing/reference";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    numerics: { type: "string" },
    ids: { type: "string" },
    "no-reference": { type: "boolean", default: false },
  },
});
const path = positionals[0] ?? requireModel("chat");
const numerics = (values.numerics ?? "exact,fast,ggml").split(",") as Numerics[];
const first = await openChatModel(path, { numerics: numerics[0] });
const inputs = values.ids
  ? [{ label: "ids", ids: values.ids.split(",").map(Number) }]
  : REFERENCE_PROMPTS.map((p) => ({
      label: `${p.kind} ${JSON.stringify(p.text).slice(0, 40)}`,
      ids: promptIds(first, p),
    }));
const V = first.config.vocabSize;
await first.decoder.release();

const columns: Array<{ name: string; dists: Float64Array[] }> = [];
let reference: Float64Array[] | null = null;
if (!values["no-reference"]) {
  const file = openGguf(path);
  const weights = keptWeights(ggufWeights(file, configFromGguf(file), "reference"));
  reference = inputs.map(({ ids }) =>
    softmax(referenceForward(weights, ids, undefined, 0, [ids.length - 1]).logits[0]),
  );
  file.close();
}
for (const n of numerics) {
  const model = await openChatModel(path, { numerics: n });
  const dists: Float64Array[] = [];
  for (const { ids } of inputs) dists.push(await ourNextToken(model, ids));
  columns.push({ name: n, dists });
  await model.decoder.release();
}
let cpuPath = "";
for (const flashAttention of [false, true]) {
  const ref = await LlamaCpp.open(path, { flashAttention });
  cpuPath = ref.cpuPath;
  const dists: Float64Array[] = [];
  for (const { ids } of inputs) dists.push(await ref.nextToken(ids, V));
  columns.push({ name: `llama.cpp fa ${flashAttention ? "on" : "off"}`, dists });
  await ref.dispose();
}

const base = reference ?? columns[0].dists;
const baseName = reference ? "the float64 reference" : columns[0].name;
console.log(
  `llama.cpp CPU path: ${cpuPath}; largest probability difference from ${baseName} (* = top token differs)`,
);
console.log(["tokens", ...columns.map((c) => c.name.padStart(16)), "prompt"].join("\t"));
const rows = inputs.map(({ label, ids }, i) => {
  const cells = columns.map((c) => ({
    diff: maxProbDiff(c.dists[i], base[i]),
    top: top(c.dists[i]) === top(base[i]),
  }));
  console.log(
    [
      String(ids.length),
      ...cells.map((x) => `${x.diff.toExponential(2)}${x.top ? " " : "*"}`.padStart(16)),
      label,
    ].join("\t"),
  );
  return {
    label,
    tokens: ids.length,
    cells: Object.fromEntries(columns.map((c, j) => [c.name, cells[j]])),
  };
});
const worst = columns.map(
  (c) => `${c.name} ${Math.max(...rows.map((r) => r.cells[c.name].diff)).toExponential(2)}`,
);
console.log(`largest: ${worst.join(", ")}`);
const dir = join(REPO_ROOT, "bench-results");
mkdirSync(dir, { recursive: true });
writeFileSync(
  join(dir, "parity-probe.json"),
  `${JSON.stringify({ measuredAt: new Date().toISOString(), cpuPath, against: baseName, rows }, null, 1)}\n`,
);

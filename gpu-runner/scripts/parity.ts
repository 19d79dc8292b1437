/**
 * `npm run parity`: our runtime against llama.cpp (node-llama-cpp) on the default chat model.
 * Prints `parity: N/10 identical` and, for each differing prompt, the first differing position and
 * the two tokens; writes the full report to bench-results/parity.json.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { openChatModel } from "../src/model";
import { requireModel } from "../src/models";
import { PARITY_PROMPTS, runParity } from "../src/parity/parity";
import { REPO_ROOT } from "../src/paths";

const numerics = process.env.EPICACHE_NUMERICS === "exact" ? "exact" : "ggml";
const model = await openChatModel(process.env.EPICACHE_CHAT_MODEL ?? requireModel("chat"), { numerics, log: (m) => console.error(m) });
const report = await runParity(model, { log: (l) => console.log(l) });
await model.decoder.release();

for (const p of report.prompts.filter((x) => !x.identical)) {
  const i = p.firstDiff;
  const show = (id: number | undefined) => (id === undefined ? "(none)" : `${id} ${JSON.stringify(model.tokenizer.decode([id], { keepSpecial: true }))}`);
  console.log(`  ${p.prompt.kind} ${JSON.stringify(p.prompt.text)}: first difference at token ${i}: ours ${show(p.ours[i])}, llama.cpp ${show(p.reference[i])}`);
}
const tokOk = report.tokenizer.filter((t) => t.identical).length;
console.log(`tokenizer: ${tokOk}/${report.tokenizer.length} identical`);
for (const t of report.tokenizer.filter((x) => !x.identical)) console.log(`  ${JSON.stringify(t.text)} special=${t.special}: ours ${t.ours} llama.cpp ${t.reference}`);
console.log(`speed: ${report.msPerToken.ours.toFixed(1)} ms/token here (${numerics} numerics), ${report.msPerToken.reference.toFixed(1)} ms/token llama.cpp, ${report.threads} threads each, prefill included`);
console.log(`parity: ${report.identical}/${PARITY_PROMPTS.length} identical`);
const dir = join(REPO_ROOT, "bench-results");
mkdirSync(dir, { recursive: true });
writeFileSync(join(dir, `parity-${numerics}.json`), `${JSON.stringify({ measuredAt: new Date().toISOString(), model: model.path, numerics, ...report }, null, 1)}\n`);

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

const model = await openChatModel(process.env.EPICACHE_CHAT_MODEL ?? requireModel("chat"), { log: (m) => console.error(m) });
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
console.log(`parity: ${report.identical}/${PARITY_PROMPTS.length} identical`);
const dir = join(REPO_ROOT, "bench-results");
mkdirSync(dir, { recursive: true });
writeFileSync(join(dir, "parity.json"), `${JSON.stringify({ measuredAt: new Date().toISOString(), model: model.path, ...report }, null, 1)}\n`);

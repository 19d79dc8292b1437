/**
 * `npm run parity`: this runtime against llama.cpp (node-llama-cpp) on the default chat model.
 * Prints llama.cpp's CPU path, `parity: N/10 identical`, the largest next-token probability difference
 * and the bound it is held to where the numerics do not emulate that path, and for each differing
 * prompt the first differing position and the two tokens; writes bench-results/parity-<numerics>.json.
 * `EPICACHE_NUMERICS=exact|fast|ggml` picks the numerics (default ggml).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { NUMERICS, openChatModel, type Numerics } from "../src/runtime";
import { requireModel } from "../src/model-registry";
import { NEXT_TOKEN_BOUND, PARITY_PROMPTS, runParity } from "../src/parity/parity";
import { REPO_ROOT } from "../src/paths";

const raw = process.env.EPICACHE_NUMERICS ?? "ggml";
if (!(NUMERICS as readonly string[]).includes(raw)) {
  console.error(
    `parity: EPICACHE_NUMERICS ${JSON.stringify(raw)} is not one of ${NUMERICS.join(", ")} [invalid_argument]`,
  );
  process.exit(2);
}
const numerics = raw as Numerics;
const model = await openChatModel(process.env.EPICACHE_CHAT_MODEL ?? requireModel("chat"), {
  numerics,
  log: (m) => console.error(m),
});
const report = await runParity(model, { log: (l) => console.log(l) });
await model.decoder.release();

for (const p of report.prompts.filter((x) => !x.identical)) {
  const i = p.firstDiff;
  const show = (id: number | undefined) =>
    id === undefined
      ? "(none)"
      : `${id} ${JSON.stringify(model.tokenizer.decode([id], { keepSpecial: true }))}`;
  console.log(
    `  ${p.prompt.kind} ${JSON.stringify(p.prompt.text)}: first difference at token ${i}: ours ${show(p.ours[i])}, llama.cpp ${show(p.reference[i])}`,
  );
}
const tokOk = report.tokenizer.filter((t) => t.identical).length;
console.log(`tokenizer: ${tokOk}/${report.tokenizer.length} identical`);
for (const t of report.tokenizer.filter((x) => !x.identical))
  console.log(
    `  ${JSON.stringify(t.text)} special=${t.special}: ours ${t.ours} llama.cpp ${t.reference}`,
  );
console.log(
  `speed: ${report.msPerToken.ours.toFixed(1)} ms/token here (${numerics} numerics), ${report.msPerToken.reference.toFixed(1)} ms/token llama.cpp, ${report.threads} threads each, prefill included`,
);
console.log(
  `cpu path: ${report.cpuPath} (${report.emulated ? `emulated by ${numerics} numerics: generations compared token for token with llama.cpp's plain attention` : `not emulated by ${numerics} numerics: compared with llama.cpp's ${report.flashAttention ? "flash" : "plain"} attention by next-token distribution`})`,
);
const bound = NEXT_TOKEN_BOUND[numerics];
console.log(
  `next-token distribution: largest probability difference ${report.maxNextTokenDiff.toExponential(2)}${report.emulated ? "" : ` (bound ${bound.toExponential(1)}: ${report.maxNextTokenDiff <= bound ? "within" : "OUTSIDE"})`}`,
);
console.log(`parity: ${report.identical}/${PARITY_PROMPTS.length} identical`);
const dir = join(REPO_ROOT, "bench-results");
mkdirSync(dir, { recursive: true });
writeFileSync(
  join(dir, `parity-${numerics}.json`),
  `${JSON.stringify({ measuredAt: new Date().toISOString(), model: model.path, bound, ...report }, null, 1)}\n`,
);

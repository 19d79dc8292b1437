/**
 * A finer parity measure than identical tokens: for each parity prompt, the largest difference
 * between this runtime's next-token distribution after the prompt and llama.cpp's (one forward
 * pass each, no generation). With exact agreement it is ~1e-7 (llama.cpp softmaxes in f32); one
 * rounding reproduced differently anywhere shows up as 1e-4…1e-2. Run it on GGUF copies truncated
 * with gguf-truncate.ts to find the first layer that differs:
 *
 *   npx tsx gpu-runner/scripts/parity-probe.ts [MODEL.gguf] [--numerics ggml|exact] [--ids 1,2,3]
 */
import { parseArgs } from "node:util";
import { KvCache, openChatModel } from "../src/model";
import { requireModel } from "../src/models";
import { PARITY_PROMPTS, promptIds } from "../src/parity/parity";

const { values, positionals } = parseArgs({ allowPositionals: true, options: { numerics: { type: "string" }, ids: { type: "string" } } });
const path = positionals[0] ?? requireModel("chat");
const numerics = values.numerics === "exact" ? "exact" : "ggml";
const { getLlama, LlamaLogLevel } = await import("node-llama-cpp");
const llama = await getLlama({ gpu: false, build: "never", skipDownload: true, logLevel: LlamaLogLevel.error, maxThreads: 1 });
const ref = await llama.loadModel({ modelPath: path, gpuLayers: 0 });
const context = await ref.createContext({ contextSize: 1024, batchSize: 512, sequences: 1, threads: 1, flashAttention: false });
const sequence = context.getSequence();
const model = await openChatModel(path, { numerics });
const inputs = values.ids ? [{ label: "ids", ids: values.ids.split(",").map(Number) }] : PARITY_PROMPTS.map((p) => ({ label: `${p.kind} ${JSON.stringify(p.text).slice(0, 40)}`, ids: promptIds(model, p) }));
for (const { label, ids } of inputs) {
  await sequence.clearHistory();
  let probabilities: Map<number, number> | undefined;
  for await (const out of sequence.evaluateWithMetadata(ids as never, { probabilities: true }, { temperature: 0 })) {
    probabilities = out.probabilities as Map<number, number>;
    break;
  }
  const logits = (await model.decoder.forward(ids, ids.map((_, i) => i), new KvCache(model.config), [ids.length - 1])).logits;
  let max = -Infinity;
  for (const v of logits) max = Math.max(max, v);
  let z = 0;
  for (const v of logits) z += Math.exp(v - max);
  let diff = 0;
  for (const [id, p] of probabilities ?? []) diff = Math.max(diff, Math.abs(p - Math.exp(logits[id] - max) / z));
  console.log(`${diff.toExponential(2)}\t${ids.length} tokens\t${label}`);
}
await model.decoder.release();
await context.dispose();
await llama.dispose();

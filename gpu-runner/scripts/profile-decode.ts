/**
 * Where a decoding step's time goes, by operator type: onnxruntime's own profiler on the decoder graph
 * of the default chat model, one new token over a cache of --past entries per head (seeded random
 * values: a zero-filled buffer that was never written maps the kernel's shared zero page, so its reads
 * come from cache and attention over 8,000 entries looked twice as fast as over a real cache),
 * --steps timed runs after 3 warm-up runs. --tokens T profiles a
 * prefill call of T tokens instead (attention in chunks, as the runtime runs it), with a scoring
 * span of --score-span tokens at its end (block-wise prefill's scoring call).
 *
 *   npx tsx gpu-runner/scripts/profile-decode.ts [--past 128] [--steps 20] [--threads 2] [--numerics fast]
 *     [--tokens 1] [--score-span 0]
 *
 * Prints ms per step and, per operator type, ms per step and calls per step (an If's time includes
 * the subgraph it runs). Measure on a quiet machine: other load stretches every line.
 */
import { readdirSync, readFileSync, rmSync } from "node:fs";
import { parseArgs } from "node:util";
import * as ort from "onnxruntime-node";
import { openChatModel, seededRandom } from "../src/runtime";
import type { Numerics } from "../src/runtime/decoder-graph";
import { ATTENTION_CHUNK } from "../src/runtime/decoder";
import { evenEntries } from "../src/runtime/kv-cache";
import { decoderGraphPath } from "../src/runtime/graph-cache";
import { requireModel } from "../src/model-registry";
import { graphsDir } from "../src/paths";

const { values } = parseArgs({
  options: {
    past: { type: "string", default: "128" },
    steps: { type: "string", default: "20" },
    threads: { type: "string", default: "2" },
    numerics: { type: "string", default: "fast" },
    tokens: { type: "string", default: "1" },
    "score-span": { type: "string", default: "0" },
    chunk: { type: "string" },
  },
});
// An even number of entries per head, at least 2, as the runtime's buffers hold (kv-cache.ts).
const P = evenEntries(Number(values.past)),
  N = Number(values.steps),
  T = Number(values.tokens),
  span = Number(values["score-span"]);
if (!(T >= 1) || !(span >= 0 && span <= T))
  throw new Error("--tokens ≥ 1 and 0 ≤ --score-span ≤ --tokens");
// Opening the model builds (or finds) its graph; the profiled session is a second one on that file.
const model = await openChatModel(requireModel("chat"), { numerics: values.numerics as Numerics });
const graph = decoderGraphPath(model.fingerprint, model.numerics, graphsDir());
await model.decoder.release();
const session = await ort.InferenceSession.create(graph, {
  graphOptimizationLevel: "all",
  intraOpNumThreads: Number(values.threads),
  enableProfiling: true,
  profileFilePrefix: "epicache-profile",
  extra: { session: { intra_op: { allow_spinning: "0" } } },
});
const { numLayers: L, numKvHeads: KV, headDim: D } = model.config;
const feeds: Record<string, ort.Tensor> = {
  input_ids: new ort.Tensor("int64", new BigInt64Array(T).fill(100n), [T]),
  rope_cos: new ort.Tensor("float32", new Float32Array((T * D) / 2).fill(1), [T, D / 2]),
  rope_sin: new ort.Tensor("float32", new Float32Array((T * D) / 2), [T, D / 2]),
  logits_index: new ort.Tensor("int64", BigInt64Array.from([BigInt(T - 1)]), [1]),
  past_lengths: new ort.Tensor("int64", new BigInt64Array(L * KV).fill(BigInt(P)), [L, KV]),
  score_len: new ort.Tensor("int64", BigInt64Array.from([BigInt(span)]), [1]),
  attn_chunk: new ort.Tensor(
    "int64",
    BigInt64Array.from([BigInt(values.chunk ?? (T >= 16 ? ATTENTION_CHUNK : 0))]),
    [1],
  ),
};
const rand = seededRandom(1);
const filled = () => Float32Array.from({ length: KV * P * D }, () => rand() * 2 - 1); // [KV, P, D]
for (let l = 0; l < L; l++) {
  feeds[`past_key_${l}`] = new ort.Tensor("float32", filled(), [KV, P, D]);
  feeds[`past_value_${l}`] = new ort.Tensor("float32", filled(), [KV, P, D]);
}
for (let i = 0; i < 3; i++) await session.run(feeds);
const t0 = performance.now();
for (let i = 0; i < N; i++) await session.run(feeds);
const ms = (performance.now() - t0) / N;
session.endProfiling();
await session.release();
// The profile lands in the working directory, named by the prefix and the time.
const file = readdirSync(".")
  .filter((f) => f.startsWith("epicache-profile"))
  .sort()
  .at(-1);
if (!file) throw new Error("onnxruntime wrote no profile");
const events = JSON.parse(readFileSync(file, "utf8")) as Array<{
  cat: string;
  name: string;
  dur: number;
  args?: { op_name?: string };
}>;
rmSync(file);
const runs = events.filter((e) => e.cat === "Session" && e.name === "model_run").length;
const byOp = new Map<string, { us: number; calls: number }>();
for (const e of events) {
  if (e.cat !== "Node" || !e.name.endsWith("_kernel_time")) continue;
  const op = e.args?.op_name ?? "?";
  const o = byOp.get(op) ?? { us: 0, calls: 0 };
  o.us += e.dur;
  o.calls++;
  byOp.set(op, o);
}
process.stdout.write(
  `${T === 1 ? "decode step" : `prefill of ${T} tokens${span > 0 ? ` (scoring the last ${span})` : ""}`} over ${P} past entries per head: ${ms.toFixed(1)} ms (${N} runs, ${values.threads} threads, ${values.numerics})\n`,
);
for (const [op, o] of [...byOp].sort((a, b) => b[1].us - a[1].us).slice(0, 20)) {
  process.stdout.write(
    `  ${op.padEnd(22)} ${(o.us / 1000 / runs).toFixed(2).padStart(6)} ms  ${String(Math.round(o.calls / runs)).padStart(4)} calls\n`,
  );
}

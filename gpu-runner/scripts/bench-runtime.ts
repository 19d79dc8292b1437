/**
 * `npm run bench:runtime`: this runtime against llama.cpp (node-llama-cpp) on the default chat model,
 * the same thread count for both. Prints and writes bench/results/runtime.json:
 *   prefill tokens/s of a 2,048-token prompt (one call, as llama.cpp's batch of 512 does it);
 *   decode tokens/s for 128 greedy tokens after those 2,048;
 *   block-wise prefill (B = 512, budget 1,024 per layer, a 64-token scoring span after each block)
 *     tokens/s, ours only;
 *   peak RSS of each side (each runs in its own child process).
 *
 *   npm run bench:runtime -- [--model PATH] [--threads 2] [--numerics fast|exact|ggml] [--context 2048] [--decode 128]
 *
 * The prompt is a seeded sequence of ordinary tokens: speed does not depend on what they say.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { openGguf } from "../src/gguf";
import { configFromGguf, cpuPathOf, KvCache, openChatModel, type CpuPath } from "../src/runtime";
import type { Numerics } from "../src/runtime/decoder-graph";
import { argmax, seededRandom } from "../src/runtime/sampling";
import { requireModel } from "../src/model-registry";
import { REPO_ROOT } from "../src/paths";
import { blockPrefill, type KeepPolicy } from "../src/prefill";

const { values } = parseArgs({
  options: {
    model: { type: "string" },
    threads: { type: "string", default: "2" },
    numerics: { type: "string", default: "fast" },
    context: { type: "string", default: "2048" },
    decode: { type: "string", default: "128" },
    side: { type: "string" },
  },
});
const config = {
  model: values.model ?? requireModel("chat"),
  threads: Number(values.threads),
  numerics: values.numerics as Numerics,
  contextTokens: Number(values.context),
  decodeTokens: Number(values.decode),
  blockSize: 512,
  budget: 1024,
  scoringSpan: 64,
  seed: 1,
};

interface Side {
  prefillTokensPerSecond: number;
  decodeTokensPerSecond: number;
  blockPrefillTokensPerSecond: number | null;
  peakRssBytes: number;
  /** llama.cpp's CPU path (its side only): the kernels it ran with here. */
  cpuPath?: CpuPath;
}

function promptIds(vocab: number): number[] {
  const rand = seededRandom(config.seed);
  // Ids from the ordinary part of the vocabulary (SmolLM2's specials sit below 20).
  return Array.from(
    { length: config.contextTokens },
    () => 100 + Math.floor(rand() * (vocab - 200)),
  );
}

const seconds = (t0: number) => (performance.now() - t0) / 1000;

async function ours(): Promise<Side> {
  const model = await openChatModel(config.model, {
    numerics: config.numerics,
    runtime: { executionProvider: "cpu", threads: config.threads },
  });
  const ids = promptIds(model.config.vocabSize);
  const positions = ids.map((_, i) => i);
  // Warm-up: the first run of a session pays for allocations.
  await model.decoder.forward(
    ids.slice(0, 64),
    positions.slice(0, 64),
    new KvCache(model.config),
    [63],
  );
  const cache = new KvCache(model.config, config.contextTokens + config.decodeTokens);
  let t0 = performance.now();
  const pre = await model.decoder.forward(ids, positions, cache, [ids.length - 1]);
  const prefill = seconds(t0);
  cache.append(pre.keys, pre.values, positions);
  let next = argmax(pre.logits);
  t0 = performance.now();
  for (let i = 0; i < config.decodeTokens; i++) {
    const pos = [cache.nextPosition];
    const out = await model.decoder.forward([next], pos, cache, [0]);
    cache.append(out.keys, out.values, pos);
    next = argmax(out.logits);
  }
  const decode = seconds(t0);
  const policy: KeepPolicy = {
    name: "last-window",
    scoringPrompt: (block) => block.slice(-config.scoringSpan),
    score: ({ attention }) => attention ?? [],
  };
  t0 = performance.now();
  await blockPrefill(model.decoder, new KvCache(model.config), ids, {
    blockSize: config.blockSize,
    budgets: Array(model.config.numLayers).fill(config.budget),
    policy,
  });
  const block = seconds(t0);
  await model.decoder.release();
  return {
    prefillTokensPerSecond: ids.length / prefill,
    decodeTokensPerSecond: config.decodeTokens / decode,
    blockPrefillTokensPerSecond: ids.length / block,
    peakRssBytes: process.resourceUsage().maxRSS * 1024,
  };
}

async function llamaCpp(): Promise<Side> {
  const { getLlama, LlamaLogLevel } = await import("node-llama-cpp");
  const llama = await getLlama({
    gpu: false,
    build: "never",
    skipDownload: true,
    logLevel: LlamaLogLevel.error,
    maxThreads: config.threads,
  });
  const model = await llama.loadModel({ modelPath: config.model, gpuLayers: 0 });
  const context = await model.createContext({
    contextSize: config.contextTokens + config.decodeTokens + 64,
    batchSize: 512,
    sequences: 1,
    threads: config.threads,
    flashAttention: false,
  });
  const sequence = context.getSequence();
  const file = openGguf(config.model);
  const ids = promptIds(configFromGguf(file).vocabSize);
  file.close();
  await sequence.evaluateWithoutGeneratingNewTokens(ids.slice(0, 64) as never);
  await sequence.clearHistory();
  let t0 = performance.now();
  await sequence.evaluateWithoutGeneratingNewTokens(ids as never);
  const prefill = seconds(t0);
  let n = 0;
  t0 = performance.now();
  for await (const _ of sequence.evaluate([ids[ids.length - 1]] as never, { temperature: 0 })) {
    if (++n >= config.decodeTokens) break;
  }
  const decode = seconds(t0);
  const systemInfo = llama.systemInfo;
  await context.dispose();
  await llama.dispose();
  return {
    prefillTokensPerSecond: ids.length / prefill,
    decodeTokensPerSecond: n / decode,
    blockPrefillTokensPerSecond: null,
    peakRssBytes: process.resourceUsage().maxRSS * 1024,
    cpuPath: cpuPathOf(systemInfo),
  };
}

if (values.side) {
  const result = values.side === "ours" ? await ours() : await llamaCpp();
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
}

const run = (side: string): Side => {
  const args = [
    process.argv[1],
    "--side",
    side,
    "--model",
    config.model,
    "--threads",
    String(config.threads),
    "--numerics",
    config.numerics,
    "--context",
    String(config.contextTokens),
    "--decode",
    String(config.decodeTokens),
  ];
  const out = execFileSync(process.execPath, [...process.execArgv, ...args], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
    maxBuffer: 1 << 20,
  });
  return JSON.parse(out.trim().split("\n").pop() as string) as Side;
};
const epicache = run("ours");
const reference = run("llama.cpp");
const result = {
  measuredAt: new Date().toISOString(),
  config,
  cpuPath: reference.cpuPath,
  epicache,
  llamaCpp: reference,
  prefillRatio: epicache.prefillTokensPerSecond / reference.prefillTokensPerSecond,
  decodeRatio: epicache.decodeTokensPerSecond / reference.decodeTokensPerSecond,
};
const f = (v: number) => v.toFixed(1);
console.log(`llama.cpp CPU path: ${reference.cpuPath}`);
console.log(
  `prefill ${config.contextTokens} tokens: ${f(epicache.prefillTokensPerSecond)} tokens/s here, ${f(reference.prefillTokensPerSecond)} llama.cpp (ratio ${result.prefillRatio.toFixed(2)})`,
);
console.log(
  `decode ${config.decodeTokens} tokens after ${config.contextTokens}: ${f(epicache.decodeTokensPerSecond)} tokens/s here, ${f(reference.decodeTokensPerSecond)} llama.cpp (ratio ${result.decodeRatio.toFixed(2)})`,
);
console.log(
  `block-wise prefill (B ${config.blockSize}, budget ${config.budget}, scoring on): ${f(epicache.blockPrefillTokensPerSecond ?? 0)} tokens/s here`,
);
console.log(
  `peak RSS: ${(epicache.peakRssBytes / 2 ** 20).toFixed(0)} MiB here, ${(reference.peakRssBytes / 2 ** 20).toFixed(0)} MiB llama.cpp`,
);
const dir = join(REPO_ROOT, "bench", "results");
mkdirSync(dir, { recursive: true });
writeFileSync(join(dir, "runtime.json"), `${JSON.stringify(result, null, 1)}\n`);
console.log(`wrote ${join(dir, "runtime.json")}`);

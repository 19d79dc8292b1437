/**
 * `npm run bench:runtime`: this runtime against llama.cpp (node-llama-cpp) on the default chat model,
 * the same thread count for both, each side in its own child process. Prints and writes
 * bench/results/runtime.json (or --out):
 *   prefill tokens/s of a 2,048-token prompt (--prefill): one Decoder.prefill here (graph calls of
 *     PREFILL_PART tokens, appended to the cache as they go), one evaluation in llama.cpp
 *     (batches of 512);
 *   decode tokens/s of 128 greedy tokens (--decode) after 128, 2,048 and 8,192 tokens of context
 *     (--contexts). A context is a prompt fed in calls of 512 tokens (the prefill's one call where the
 *     lengths match; prompt time not counted), then the decode is timed; where context + decode would
 *     pass the model's window (8,192 for SmolLM2) the prompt is window − decode − 64 tokens (room
 *     that keeps node-llama-cpp from shifting its context), so "8,192" measures decoding from 8,000
 *     to 8,128;
 *   ours only: block-wise prefill with scoring of the same prompt (B 512, budget 1,024 entries per KV
 *     head on average, a 64-token scoring span after each block) in tokens/s and as a ratio to the
 *     plain prefill;
 *   ours only: decode from a compressed cache against full KV at 7K context (--compressed-context
 *     7000): a block-wise prefill of 7,000 tokens under the budget, then the timed decode; against a
 *     plain prefill of the same 7,000 tokens (calls of 512) and the same timed decode over all of it;
 *   peak RSS of each side after the work both do (ours also after its own extra runs);
 *   the CPU (name, family and model from /proc/cpuinfo) and llama.cpp's kernel path on it (amx,
 *     avx512, avx2, other).
 *
 *   npm run bench:runtime -- [--model PATH] [--threads 2] [--numerics fast|exact|ggml]
 *     [--prefill 2048] [--contexts 128,2048,8192] [--decode 128] [--block-size 512] [--budget 1024]
 *     [--scoring-span 64] [--compressed-context 7000] [--side ours|llama] [--out PATH]
 *
 * --side runs one side only and prints its figures; nothing is written (the results are ratios).
 * A quick check of the whole thing (under two minutes on 2 cores):
 *   npx tsx gpu-runner/scripts/bench-runtime.ts --prefill 128 --contexts 64,128 --decode 8 \
 *     --compressed-context 600 --budget 128 --block-size 256 --out /tmp/runtime.json
 *
 * The prompt is a seeded sequence of ordinary tokens: speed does not depend on what they say.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus } from "node:os";
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { openGguf } from "../src/gguf";
import {
  argmax,
  configFromGguf,
  cpuPathOf,
  hostCpuPath,
  KvCache,
  NUMERICS,
  openChatModel,
  seededRandom,
  type CpuPath,
  type Numerics,
} from "../src/runtime";
import type { Decoder } from "../src/runtime/decoder";
import { requireModel } from "../src/model-registry";
import { REPO_ROOT } from "../src/paths";
import { blockPrefill, type KeepPolicy } from "../src/prefill";

const { values } = parseArgs({
  options: {
    model: { type: "string" },
    threads: { type: "string", default: "2" },
    numerics: { type: "string", default: "fast" },
    prefill: { type: "string", default: "2048" },
    contexts: { type: "string", default: "128,2048,8192" },
    decode: { type: "string", default: "128" },
    "block-size": { type: "string", default: "512" },
    budget: { type: "string", default: "1024" },
    "scoring-span": { type: "string", default: "64" },
    "compressed-context": { type: "string", default: "7000" },
    side: { type: "string" },
    out: { type: "string" },
    /** Internal: the side this child process runs; it prints its Side as JSON. */
    child: { type: "string" },
  },
});

function fail(message: string): never {
  console.error(`bench-runtime: ${message}`);
  process.exit(2);
}

function positive(name: string, text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) fail(`--${name} ${text} is not a positive integer`);
  return n;
}

const SIDES = ["ours", "llama"] as const;
type SideName = (typeof SIDES)[number];
const sideOf = (name: string, text: string | undefined): SideName | undefined => {
  if (text !== undefined && !SIDES.includes(text as SideName))
    fail(`--${name} ${text}: one of ${SIDES.join(", ")}`);
  return text as SideName | undefined;
};

if (!NUMERICS.includes(values.numerics as Numerics))
  fail(`--numerics ${values.numerics}: one of ${NUMERICS.join(", ")}`);

const config = {
  model: values.model ?? requireModel("chat"),
  threads: positive("threads", values.threads),
  numerics: values.numerics as Numerics,
  prefillTokens: positive("prefill", values.prefill),
  contexts: [
    ...new Set(values.contexts.split(",").map((s) => positive("contexts", s.trim()))),
  ].sort((a, b) => a - b),
  decodeTokens: positive("decode", values.decode),
  /** Tokens per call when a context's prompt is fed before a timed decode. */
  fillChunk: 512,
  blockSize: positive("block-size", values["block-size"]),
  budget: positive("budget", values.budget),
  scoringSpan: positive("scoring-span", values["scoring-span"]),
  compressedContextTokens: positive("compressed-context", values["compressed-context"]),
  seed: 1,
};
const side = sideOf("side", values.side);
const child = sideOf("child", values.child);

const modelConfig = (() => {
  const file = openGguf(config.model);
  try {
    return configFromGguf(file);
  } finally {
    file.close();
  }
})();
const window = modelConfig.contextLength;
if (config.prefillTokens > window)
  fail(`--prefill ${config.prefillTokens} is longer than the model's window of ${window}`);
if (config.compressedContextTokens + config.decodeTokens > window)
  fail(
    `--compressed-context ${config.compressedContextTokens} and --decode ${config.decodeTokens} pass the model's window of ${window}`,
  );
if (config.decodeTokens >= window)
  fail(`--decode ${config.decodeTokens} leaves no room in the model's window of ${window}`);

/**
 * Tokens left free at the end of the window: node-llama-cpp shifts its context (dropping and
 * re-evaluating tokens) once a sequence reaches the context's size, which would time that instead.
 */
const ROOM = 64;
/** Each decode measurement: the context asked for, and the prompt that fits its decode in the window. */
const decodeContexts = config.contexts.map((context) => ({
  context,
  prompt: Math.min(context, window - config.decodeTokens - ROOM),
}));

interface Side {
  prefillTokensPerSecond: number;
  /** Keyed by the context asked for (see `decodeContexts` for the prompt each one had). */
  decodeTokensPerSecond: Record<string, number>;
  /** Peak RSS after the work both sides do (prefill and the decodes). */
  peakRssBytes: number;
  /** llama.cpp's CPU path (its side only): the kernels it ran with here. */
  cpuPath?: CpuPath;
  /** Ours only. */
  blockPrefillTokensPerSecond?: number;
  /** Blocks of that prefill after which a scoring span ran (not those within the budget). */
  blockPrefillScoredBlocks?: number;
  compressedDecode?: {
    /** Decode tokens/s after the block-wise prefill under the budget, and after the plain one. */
    compressed: number;
    full: number;
    /** Entries per KV head after the block-wise prefill: the mean, and the longest head of any layer. */
    entriesPerHead: number;
    longestHead: number;
  };
  /** Ours: peak RSS after everything, its own runs included. */
  peakRssBytesTotal?: number;
}

function promptIds(length: number): number[] {
  const rand = seededRandom(config.seed);
  // Ids from the ordinary part of the vocabulary (SmolLM2's specials sit below 20). The same seed
  // gives every length a prefix of the same sequence.
  return Array.from({ length }, () => 100 + Math.floor(rand() * (modelConfig.vocabSize - 200)));
}

const seconds = (t0: number) => (performance.now() - t0) / 1000;
const peakRss = () => process.resourceUsage().maxRSS * 1024;
/** Lets the last stage's cache go before the next (the child runs with --expose-gc). */
const collect = () => (globalThis as { gc?: () => void }).gc?.();

/** A cache holding the first `length` prompt tokens, fed `chunk` tokens per call, and the greedy next token. */
async function fill(decoder: Decoder, length: number, chunk: number) {
  const ids = promptIds(length);
  const cache = new KvCache(decoder.config, length + config.decodeTokens);
  let logits: Float32Array = new Float32Array(0);
  const t0 = performance.now();
  for (let s = 0; s < length; s += chunk) {
    const part = ids.slice(s, s + chunk);
    const positions = part.map((_, i) => s + i);
    logits = await decoder.prefill(part, positions, cache, [part.length - 1]);
  }
  return { cache, next: argmax(logits), seconds: seconds(t0) };
}

/** Tokens/s of `config.decodeTokens` greedy steps from `cache`, starting with token `next`. */
async function decodeRate(decoder: Decoder, cache: KvCache, next: number): Promise<number> {
  // Room for every step before the clock starts, as llama.cpp's cache is allocated up front.
  cache.reserve(config.decodeTokens);
  const t0 = performance.now();
  for (let i = 0; i < config.decodeTokens; i++) {
    const pos = [cache.nextPosition];
    const out = await decoder.forward([next], pos, cache, [0]);
    cache.append(out.keys, out.values, pos);
    next = argmax(out.logits);
  }
  return config.decodeTokens / seconds(t0);
}

async function ours(): Promise<Side> {
  const model = await openChatModel(config.model, {
    numerics: config.numerics,
    runtime: { executionProvider: "cpu", threads: config.threads },
  });
  const decoder = model.decoder;
  const L = model.config.numLayers;
  // Warm-up: the first run of a session pays for allocations.
  await fill(decoder, 64, 64);

  // Prefill in one call; the decodes after each context (the prefill's cache where the lengths match).
  const P = config.prefillTokens;
  let prefill = decodeContexts.some((c) => c.prompt === P)
    ? 0
    : (await fill(decoder, P, P)).seconds;
  const decode: Record<string, number> = {};
  for (const { context, prompt } of decodeContexts) {
    collect();
    const start = await fill(decoder, prompt, prompt === P ? P : config.fillChunk);
    if (prompt === P) prefill = start.seconds;
    decode[context] = await decodeRate(decoder, start.cache, start.next);
  }
  const peakRssBytes = peakRss();
  collect();

  // Block-wise prefill with scoring, on the prefill's prompt.
  const policy: KeepPolicy = {
    name: "last-window",
    scoringPrompt: (block) => block.slice(-config.scoringSpan),
    score: ({ attention }) => attention ?? [],
  };
  const options = {
    blockSize: config.blockSize,
    budgets: Array<number>(L).fill(config.budget),
    policy,
  };
  const t0 = performance.now();
  const { scored } = await blockPrefill(decoder, new KvCache(model.config), promptIds(P), options);
  const block = seconds(t0);
  collect();

  // Decode from the compressed cache, then from the full one, at the same context.
  const C = config.compressedContextTokens;
  const squeeze = async () => {
    const cache = new KvCache(model.config);
    const built = await blockPrefill(decoder, cache, promptIds(C), options);
    // As the service holds it: loaded from its .kvc file, each layer as long as its longest head.
    cache.shrinkToFit();
    return {
      entriesPerHead: cache.entries / (L * model.config.numKvHeads),
      longestHead: cache.maxLength,
      compressed: await decodeRate(decoder, cache, argmax(built.logits)),
    };
  };
  const { entriesPerHead, longestHead, compressed } = await squeeze();
  collect();
  const whole = await fill(decoder, C, config.fillChunk);
  const full = await decodeRate(decoder, whole.cache, whole.next);

  await decoder.release();
  return {
    prefillTokensPerSecond: P / prefill,
    decodeTokensPerSecond: decode,
    peakRssBytes,
    blockPrefillTokensPerSecond: P / block,
    blockPrefillScoredBlocks: scored,
    compressedDecode: { compressed, full, entriesPerHead, longestHead },
    peakRssBytesTotal: peakRss(),
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

  // One context for every run, sized for the longest and allocated once: llama.cpp attends over the
  // cells in use, not the whole context, so a short run is not slowed by the room.
  const longest = Math.max(
    config.prefillTokens,
    ...decodeContexts.map((c) => c.prompt + config.decodeTokens),
  );
  const context = await model.createContext({
    contextSize: Math.min(longest + 64, window),
    batchSize: 512,
    sequences: 1,
    threads: config.threads,
    flashAttention: false,
  });
  const sequence = context.getSequence();
  await sequence.evaluateWithoutGeneratingNewTokens(promptIds(64) as never);

  /**
   * The first `length` prompt tokens in one evaluation (llama.cpp's batches of 512) from an empty
   * cache, then, with `decode`, that many greedy tokens. Returns the prompt's seconds and the
   * decode's tokens/s.
   */
  const run = async (length: number, decode: boolean) => {
    await sequence.clearHistory();
    const ids = promptIds(length);
    let t0 = performance.now();
    await sequence.evaluateWithoutGeneratingNewTokens(ids as never);
    const prompt = seconds(t0);
    let rate = 0;
    if (decode) {
      // The prompt's last token again, then each greedy token: one token per step, as ours decodes,
      // and prompt + decode tokens in the cache at the end.
      let n = 0;
      t0 = performance.now();
      for await (const _ of sequence.evaluate([ids[ids.length - 1]] as never, {
        temperature: 0,
      })) {
        if (++n >= config.decodeTokens) break;
      }
      rate = n / seconds(t0);
    }
    return { prompt, rate };
  };

  const P = config.prefillTokens;
  let prefill = decodeContexts.some((c) => c.prompt === P) ? 0 : (await run(P, false)).prompt;
  const decode: Record<string, number> = {};
  for (const { context, prompt } of decodeContexts) {
    const r = await run(prompt, true);
    if (prompt === P) prefill = r.prompt;
    decode[context] = r.rate;
  }
  const systemInfo = llama.systemInfo;
  await context.dispose();
  await model.dispose();
  await llama.dispose();
  return {
    prefillTokensPerSecond: P / prefill,
    decodeTokensPerSecond: decode,
    peakRssBytes: peakRss(),
    cpuPath: cpuPathOf(systemInfo),
  };
}

if (child) {
  const result = child === "ours" ? await ours() : await llamaCpp();
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
}

const run = (name: SideName): Side => {
  const args = [
    ...(name === "ours" ? ["--expose-gc"] : []),
    ...process.execArgv,
    process.argv[1],
    "--child",
    name,
    "--model",
    config.model,
    "--threads",
    String(config.threads),
    "--numerics",
    config.numerics,
    "--prefill",
    String(config.prefillTokens),
    "--contexts",
    config.contexts.join(","),
    "--decode",
    String(config.decodeTokens),
    "--block-size",
    String(config.blockSize),
    "--budget",
    String(config.budget),
    "--scoring-span",
    String(config.scoringSpan),
    "--compressed-context",
    String(config.compressedContextTokens),
  ];
  const out = execFileSync(process.execPath, args, {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
    maxBuffer: 1 << 20,
  });
  return JSON.parse(out.trim().split("\n").pop() as string) as Side;
};

/** The CPU's name, with family and model numbers where /proc/cpuinfo has them ("Intel Xeon Processor" says little). */
function cpuName(): string {
  let text = "";
  try {
    text = readFileSync("/proc/cpuinfo", "utf8");
  } catch {
    // Not Linux: the name alone.
  }
  const field = (key: string) => new RegExp(`^${key}\\s*:\\s*(.*)$`, "m").exec(text)?.[1];
  const name = field("model name") ?? cpus()[0]?.model ?? "unknown";
  const [family, model] = [field("cpu family"), field("model")];
  return family && model ? `${name} (family ${family}, model ${model})` : name;
}

const epicache = side === "llama" ? null : run("ours");
const reference = side === "ours" ? null : run("llama");
const ratio = (a: number | undefined, b: number | undefined) =>
  a !== undefined && b !== undefined ? a / b : null;
const decode = Object.fromEntries(
  decodeContexts.map(({ context, prompt }) => {
    const [o, l] = [
      epicache?.decodeTokensPerSecond[context],
      reference?.decodeTokensPerSecond[context],
    ];
    return [
      context,
      { promptTokens: prompt, ours: o ?? null, llamaCpp: l ?? null, ratio: ratio(o, l) },
    ];
  }),
);
const squeeze = epicache?.compressedDecode;
const result = {
  measuredAt: new Date().toISOString(),
  config: { ...config, window },
  cpu: cpuName(),
  cores: availableParallelism(),
  cpuPath: reference?.cpuPath ?? hostCpuPath(),
  epicache,
  llamaCpp: reference,
  prefillRatio: ratio(epicache?.prefillTokensPerSecond, reference?.prefillTokensPerSecond),
  /** At 2,048 tokens of context (null when --contexts leaves it out). */
  decodeRatio: decode[2048]?.ratio ?? null,
  decode,
  blockPrefillRatio: ratio(epicache?.blockPrefillTokensPerSecond, epicache?.prefillTokensPerSecond),
  /**
   * The same per token the model computed: the history and a scoring span after every scored block.
   * Spans of S after blocks of B bound blockPrefillRatio by B / (B + S) (0.89 for 64 after 512, when
   * every block is scored) even at plain prefill's speed per token; this ratio is what the scoring
   * itself costs.
   */
  blockPrefillComputedRatio: ratio(
    epicache?.blockPrefillTokensPerSecond === undefined
      ? undefined
      : (epicache.blockPrefillTokensPerSecond *
          (config.prefillTokens + (epicache.blockPrefillScoredBlocks ?? 0) * config.scoringSpan)) /
          config.prefillTokens,
    epicache?.prefillTokensPerSecond,
  ),
  compressedDecode: squeeze
    ? {
        contextTokens: config.compressedContextTokens,
        budget: config.budget,
        entriesPerHead: squeeze.entriesPerHead,
        longestHead: squeeze.longestHead,
        compressed: squeeze.compressed,
        full: squeeze.full,
        ratio: squeeze.compressed / squeeze.full,
      }
    : null,
};

const f = (v: number | null | undefined) => (v == null ? "—" : v.toFixed(1));
const r = (v: number | null) => (v === null ? "" : ` (ratio ${v.toFixed(2)})`);
const mib = (v: number | undefined) => (v === undefined ? "—" : `${(v / 2 ** 20).toFixed(0)} MiB`);
console.log(`CPU: ${result.cpu}, ${result.cores} cores; llama.cpp's path: ${result.cpuPath}`);
console.log(
  `prefill ${config.prefillTokens} tokens: ${f(epicache?.prefillTokensPerSecond)} tokens/s here, ${f(reference?.prefillTokensPerSecond)} llama.cpp${r(result.prefillRatio)}`,
);
for (const [context, d] of Object.entries(decode)) {
  const capped =
    d.promptTokens < Number(context) ? ` (${d.promptTokens}: the window is ${window})` : "";
  console.log(
    `decode ${config.decodeTokens} tokens after ${context}${capped}: ${f(d.ours)} tokens/s here, ${f(d.llamaCpp)} llama.cpp${r(d.ratio)}`,
  );
}
if (epicache && squeeze && result.compressedDecode) {
  console.log(
    `block-wise prefill of the ${config.prefillTokens} (B ${config.blockSize}, budget ${config.budget}, scoring span ${config.scoringSpan}): ${f(epicache.blockPrefillTokensPerSecond)} tokens/s, ${result.blockPrefillRatio?.toFixed(2)}× plain prefill (${result.blockPrefillComputedRatio?.toFixed(2)}× per token computed, the spans of its ${epicache.blockPrefillScoredBlocks} scored blocks included)`,
  );
  console.log(
    `decode ${config.decodeTokens} tokens after ${config.compressedContextTokens}: ${f(squeeze.compressed)} tokens/s from the compressed cache (${squeeze.entriesPerHead.toFixed(0)} entries per head, longest ${squeeze.longestHead}), ${f(squeeze.full)} from full KV (ratio ${result.compressedDecode.ratio.toFixed(2)})`,
  );
}
console.log(
  `peak RSS: ${mib(epicache?.peakRssBytes)} here (${mib(epicache?.peakRssBytesTotal)} with its block-wise runs), ${mib(reference?.peakRssBytes)} llama.cpp`,
);
if (side) {
  console.log("one side only: nothing written");
} else {
  const path = values.out ?? join(REPO_ROOT, "bench", "results", "runtime.json");
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, `${JSON.stringify(result, null, 1)}\n`);
  console.log(`wrote ${path}`);
}

/**
 * Parity with llama.cpp (through node-llama-cpp, a devDependency): the same GGUF, the same prompt
 * token ids, 48 greedy tokens from each runtime, compared token for token, and the next-token
 * distribution after each prompt, compared by the largest difference of a probability. Tokenization
 * is compared separately on a fixed set of strings.
 *
 * Token-for-token identity holds only where the `ggml` numerics reproduce llama.cpp's kernels (the
 * CPU paths in {@link EMULATED_CPU_PATHS}); there llama.cpp runs without flash attention, the path
 * the emulation follows. Elsewhere llama.cpp's plain path sums in another order, and on AVX2 strays
 * from the exact result by more than its flash-attention path does, so the comparison is with the
 * flash-attention path, by distribution.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { generate, type ChatModel, type Numerics } from "../runtime";
import { REPO_ROOT } from "../paths";
import { EMULATED_CPU_PATHS, type CpuPath } from "../runtime/cpu-path";
import { LlamaCpp } from "./llama-cpp";
import { maxProbDiff, ourNextToken } from "./next-token";

export interface ParityPrompt {
  kind: "raw" | "chat";
  text: string;
}

export const PARITY_PROMPTS: readonly ParityPrompt[] = [
  { kind: "raw", text: "The capital of France is" },
  { kind: "raw", text: "Once upon a time, in a small village by the sea," },
  { kind: "raw", text: 'def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n' },
  { kind: "raw", text: "Photosynthesis is the process by which" },
  { kind: "raw", text: "1, 2, 3, 4, 5," },
  { kind: "chat", text: "What is the capital of France?" },
  { kind: "chat", text: "Write a haiku about autumn leaves." },
  { kind: "chat", text: "Give me three tips for sleeping better." },
  { kind: "chat", text: "Explain what a KV cache is in one paragraph." },
  {
    kind: "chat",
    text: "Caroline said she went to an LGBTQ support group yesterday. What did Caroline do yesterday?",
  },
];

/**
 * A chat prompt of about 300 tokens: the first 16 messages of the committed conversation excerpt and
 * a question, so the reference comparisons cover attention over a longer context than the short
 * parity prompts (and over the 16-token line where the graph's chunked attention starts).
 */
function conversationPrompt(): ParityPrompt {
  const lines = readFileSync(
    join(REPO_ROOT, "test", "fixtures", "conversation-excerpt.jsonl"),
    "utf8",
  )
    .split("\n")
    .filter((l) => l.trim() !== "")
    .slice(0, 16)
    .map((l) => JSON.parse(l) as { speaker: string; text: string });
  const history = lines.map((m) => `${m.speaker} said, "${m.text}"`).join("\n");
  return {
    kind: "chat",
    text: `${history}\n\nAnswer in a few words: what class did Maya sign up for?`,
  };
}

/** The parity prompts and one longer conversation prompt: what the float64 reference is compared on. */
export const REFERENCE_PROMPTS: readonly ParityPrompt[] = [...PARITY_PROMPTS, conversationPrompt()];

export const TOKENIZER_SAMPLES: readonly string[] = [
  "Hello world",
  "  leading spaces and 12345 digits",
  "émoji 🎉 日本語 and Ελληνικά",
  "tabs\tand\nnewlines\r\n\n  indented",
  "It's they're we've I'd you'll",
  "<|im_start|>user\nHi<|im_end|>\n",
  "price: $1,299.99 (incl. 20% VAT)",
  "https://example.com/path?query=1&x=2",
  "    def f(x):\n        return x ** 2",
  "ALL CAPS, MiXeD cAsE, snake_case, camelCase",
];

export interface PromptParity {
  prompt: ParityPrompt;
  promptTokens: number;
  ours: number[];
  reference: number[];
  identical: boolean;
  /** First differing position, or -1. */
  firstDiff: number;
  /** The largest difference of a probability between the two next-token distributions after the prompt. */
  nextTokenDiff: number;
}

export interface ParityReport {
  /** llama.cpp's CPU path here, and its own system info line. */
  cpuPath: CpuPath;
  systemInfo: string;
  /** Whether this runtime's numerics reproduce that path (then generations are compared token for token). */
  emulated: boolean;
  /** The llama.cpp attention path compared with: its plain kernels where emulated, flash attention elsewhere. */
  flashAttention: boolean;
  numerics: string;
  prompts: PromptParity[];
  identical: number;
  /** The largest {@link PromptParity.nextTokenDiff} over the prompts. */
  maxNextTokenDiff: number;
  /** Wall-clock milliseconds per generated token (prefill included), this runtime and llama.cpp. */
  msPerToken: { ours: number; reference: number };
  /** CPU threads each runtime was given. */
  threads: number;
  tokenizer: Array<{
    text: string;
    special: boolean;
    ours: number[];
    reference: number[];
    identical: boolean;
  }>;
}

export const PARITY_TOKENS = 48;

/**
 * Largest difference of a next-token probability from the float64 reference that each numerics is
 * held to, over {@link REFERENCE_PROMPTS}. `exact` computes the model in f32 (measured ≤ 2.6e-6).
 * `fast` and `ggml` quantise every matrix product's input to 8 bits per 32 values, as llama.cpp
 * does, which moves a probability by up to 0.114 (`fast`) and 0.069 (`ggml`) on these prompts, where
 * llama.cpp itself strays by 0.083 (0.062 with flash attention): README, "Parity with llama.cpp".
 */
export const REFERENCE_BOUND: Record<Numerics, number> = { exact: 1e-5, fast: 0.2, ggml: 0.1 };

/**
 * Largest difference of a next-token probability from llama.cpp's after a parity prompt. `emulated`:
 * on the CPU path the `ggml` numerics reproduce, against its plain attention (measured 2.2e-4 at
 * most). Elsewhere, per numerics, against llama.cpp's flash-attention path, which stays closer to the
 * exact result than its plain path there: `ggml` measured 0.040 on both the AVX-512 and the AVX2
 * path, `exact` 0.062 and `fast` 0.069 on AVX-512 (README, "Parity with llama.cpp").
 */
export const NEXT_TOKEN_BOUND: Record<Numerics | "emulated", number> = {
  emulated: 1e-3,
  ggml: 0.08,
  exact: 0.1,
  fast: 0.15,
};

function firstDiff(a: readonly number[], b: readonly number[]): number {
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return -1;
}

export function promptIds(model: ChatModel, p: ParityPrompt): number[] {
  return p.kind === "chat"
    ? model.tokenizer.encodeChat([{ role: "user", content: p.text }])
    : model.tokenizer.encodePrompt(p.text);
}

/** Whether `model`'s numerics reproduce llama.cpp's kernels on `cpuPath` bit for bit. */
export function emulates(model: ChatModel, cpuPath: CpuPath): boolean {
  return model.numerics === "ggml" && EMULATED_CPU_PATHS.includes(cpuPath);
}

/**
 * Runs every parity prompt through both runtimes: 48 greedy tokens each, and the next-token
 * distribution after the prompt. llama.cpp runs with flash attention off where this runtime emulates
 * its kernels and on elsewhere, unless `flashAttention` says otherwise.
 */
export async function runParity(
  model: ChatModel,
  opts: { flashAttention?: boolean; log?: (line: string) => void } = {},
): Promise<ParityReport> {
  const probe = await LlamaCpp.open(model.path, { flashAttention: false });
  const cpuPath = probe.cpuPath;
  const systemInfo = probe.systemInfo;
  const emulated = emulates(model, cpuPath);
  const flashAttention = opts.flashAttention ?? !emulated;
  let ref = probe;
  if (flashAttention) {
    await probe.dispose();
    ref = await LlamaCpp.open(model.path, { flashAttention });
  }
  opts.log?.(
    `llama.cpp CPU path: ${cpuPath} (${systemInfo.trim()}); ${emulated ? "emulated by" : "not emulated by"} ${model.numerics} numerics; flash attention ${flashAttention ? "on" : "off"}`,
  );
  try {
    const tokenizer = TOKENIZER_SAMPLES.flatMap((text) =>
      [false, true].map((special) => {
        const ours = model.tokenizer.encode(text, { parseSpecial: special });
        const reference = ref.tokenize(text, special);
        return { text, special, ours, reference, identical: firstDiff(ours, reference) === -1 };
      }),
    );
    const prompts: PromptParity[] = [];
    const time = { ours: 0, reference: 0, tokens: 0 };
    for (const prompt of PARITY_PROMPTS) {
      const ids = promptIds(model, prompt);
      const nextTokenDiff = maxProbDiff(
        await ourNextToken(model, ids),
        await ref.nextToken(ids, model.config.vocabSize),
      );
      const ours: number[] = [];
      let t0 = performance.now();
      for await (const t of generate(model, ids, { maxTokens: PARITY_TOKENS, stopIds: new Set() }))
        ours.push(t.id);
      time.ours += performance.now() - t0;
      t0 = performance.now();
      const reference = await ref.greedy(ids, PARITY_TOKENS);
      time.reference += performance.now() - t0;
      time.tokens += PARITY_TOKENS;
      const d = firstDiff(ours, reference);
      prompts.push({
        prompt,
        promptTokens: ids.length,
        ours,
        reference,
        identical: d === -1,
        firstDiff: d,
        nextTokenDiff,
      });
      opts.log?.(
        `${d === -1 ? "identical" : `differs at ${d}`}\tnext-token ${nextTokenDiff.toExponential(2)}\t${prompt.kind}\t${JSON.stringify(prompt.text).slice(0, 60)}`,
      );
    }
    return {
      cpuPath,
      systemInfo,
      emulated,
      flashAttention,
      numerics: model.numerics,
      prompts,
      identical: prompts.filter((p) => p.identical).length,
      maxNextTokenDiff: Math.max(...prompts.map((p) => p.nextTokenDiff)),
      msPerToken: { ours: time.ours / time.tokens, reference: time.reference / time.tokens },
      threads: ref.threads,
      tokenizer,
    };
  } finally {
    await ref.dispose();
  }
}

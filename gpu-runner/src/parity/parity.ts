/**
 * Parity with llama.cpp (through node-llama-cpp, a devDependency): the same GGUF, the same prompt
 * token ids, 48 greedy tokens from each runtime, compared token for token. Tokenization is compared
 * separately on a fixed set of strings.
 */
import { availableParallelism } from "node:os";
import { generate, type ChatModel } from "../model";

export interface ParityPrompt {
  kind: "raw" | "chat";
  text: string;
}

export const PARITY_PROMPTS: readonly ParityPrompt[] = [
  { kind: "raw", text: "The capital of France is" },
  { kind: "raw", text: "Once upon a time, in a small village by the sea," },
  { kind: "raw", text: "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n" },
  { kind: "raw", text: "Photosynthesis is the process by which" },
  { kind: "raw", text: "1, 2, 3, 4, 5," },
  { kind: "chat", text: "What is the capital of France?" },
  { kind: "chat", text: "Write a haiku about autumn leaves." },
  { kind: "chat", text: "Give me three tips for sleeping better." },
  { kind: "chat", text: "Explain what a KV cache is in one paragraph." },
  { kind: "chat", text: "Caroline said she went to an LGBTQ support group yesterday. What did Caroline do yesterday?" },
];

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
}

export interface ParityReport {
  prompts: PromptParity[];
  identical: number;
  /** Wall-clock milliseconds per generated token (prefill included), this runtime and llama.cpp. */
  msPerToken: { ours: number; reference: number };
  /** CPU threads each runtime was given. */
  threads: number;
  tokenizer: Array<{ text: string; special: boolean; ours: number[]; reference: number[]; identical: boolean }>;
}

export const PARITY_TOKENS = 48;

function firstDiff(a: readonly number[], b: readonly number[]): number {
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return -1;
}

export function promptIds(model: ChatModel, p: ParityPrompt): number[] {
  return p.kind === "chat" ? model.tokenizer.encodeChat([{ role: "user", content: p.text }]) : model.tokenizer.encodePrompt(p.text);
}

/** Runs every parity prompt through both runtimes. */
export async function runParity(model: ChatModel, opts: { log?: (line: string) => void } = {}): Promise<ParityReport> {
  // node-llama-cpp defaults to at least 4 threads, which on a 2-core machine is very slow: pin it.
  const threads = availableParallelism();
  const { getLlama, LlamaLogLevel } = await import("node-llama-cpp");
  const llama = await getLlama({ gpu: false, build: "never", skipDownload: true, logLevel: LlamaLogLevel.error, maxThreads: threads });
  const ref = await llama.loadModel({ modelPath: model.path, gpuLayers: 0 });
  const context = await ref.createContext({ contextSize: 1024, batchSize: 512, sequences: 1, threads, flashAttention: false });
  const sequence = context.getSequence();
  try {
    const tokenizer = TOKENIZER_SAMPLES.flatMap((text) =>
      [false, true].map((special) => {
        const ours = model.tokenizer.encode(text, { parseSpecial: special });
        const reference = Array.from(ref.tokenize(text, special), Number);
        return { text, special, ours, reference, identical: firstDiff(ours, reference) === -1 };
      }),
    );
    const prompts: PromptParity[] = [];
    const time = { ours: 0, reference: 0, tokens: 0 };
    for (const prompt of PARITY_PROMPTS) {
      const ids = promptIds(model, prompt);
      const ours: number[] = [];
      let t0 = performance.now();
      for await (const t of generate(model, ids, { maxTokens: PARITY_TOKENS, stopIds: new Set() })) ours.push(t.id);
      time.ours += performance.now() - t0;
      await sequence.clearHistory();
      const reference: number[] = [];
      t0 = performance.now();
      // temperature 0 is llama.cpp's greedy sampler; no repeat penalty; end-of-generation tokens are
      // yielded like any other, as our side is run without stop tokens.
      for await (const t of sequence.evaluate(ids as never, { temperature: 0, yieldEogToken: true })) {
        reference.push(Number(t));
        if (reference.length >= PARITY_TOKENS) break;
      }
      time.reference += performance.now() - t0;
      time.tokens += PARITY_TOKENS;
      const d = firstDiff(ours, reference);
      prompts.push({ prompt, promptTokens: ids.length, ours, reference, identical: d === -1, firstDiff: d });
      opts.log?.(`${d === -1 ? "identical" : `differs at ${d}`}\t${prompt.kind}\t${JSON.stringify(prompt.text).slice(0, 60)}`);
    }
    return {
      prompts,
      identical: prompts.filter((p) => p.identical).length,
      msPerToken: { ours: time.ours / time.tokens, reference: time.reference / time.tokens },
      threads,
      tokenizer,
    };
  } finally {
    await context.dispose();
    await ref.dispose();
    await llama.dispose();
  }
}

/**
 * Opening a chat model: weights, tokenizer and an onnxruntime session over its decoder graph.
 */
import { createHash } from "node:crypto";
import { closeSync, openSync, readSync } from "node:fs";
import { EpicacheError } from "@epicache/shared";
import { openGguf } from "../gguf";
import { TextTokenizer } from "../tokenizer";
import { graphsDir } from "../paths";
import { configFromGguf, type LlamaConfig } from "./config";
import { Decoder, DEFAULT_RUNTIME, type RuntimeOptions } from "./decoder";
import { ensureDecoderGraph } from "./graph-cache";
import type { Numerics } from "./decoder-graph";
import { ggufWeights } from "./weights";

export interface ChatModel {
  path: string;
  numerics: Numerics;
  config: LlamaConfig;
  tokenizer: TextTokenizer;
  decoder: Decoder;
  /** SHA-256 (hex, 16 chars) of the weights file: names built graphs and stored caches. */
  fingerprint: string;
}

/** SHA-256 of a file, streamed. */
export function sha256File(path: string): string {
  const hash = createHash("sha256");
  const fd = openSync(path, "r");
  try {
    const buf = new Uint8Array(1 << 22);
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      hash.update(buf.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
  return hash.digest("hex");
}

export interface OpenModelOptions {
  runtime?: RuntimeOptions;
  /**
   * "ggml" (default for GGUF files) rounds as llama.cpp's CPU kernels do, so generations match
   * llama.cpp's; "exact" computes in f32 throughout.
   */
  numerics?: Numerics;
  /** Where built graphs live (default `$EPICACHE_HOME/graphs`). */
  graphRoot?: string;
  log?: (msg: string) => void;
}

/** Opens a GGUF chat model. */
export async function openChatModel(path: string, opts: OpenModelOptions = {}): Promise<ChatModel> {
  if (!path.endsWith(".gguf")) {
    throw new EpicacheError("model_unsupported", `${path}: only GGUF chat models are supported by this build`);
  }
  const file = openGguf(path);
  try {
    const config = configFromGguf(file);
    const tokenizer = TextTokenizer.fromGguf(file);
    const fingerprint = sha256File(path).slice(0, 16);
    const weights = ggufWeights(file, config, fingerprint);
    const numerics = opts.numerics ?? "ggml";
    const graph = ensureDecoderGraph(weights, numerics, opts.graphRoot ?? graphsDir(), opts.log);
    const decoder = await Decoder.load(graph, config, numerics, opts.runtime ?? DEFAULT_RUNTIME, opts.log);
    return { path, numerics, config, tokenizer, decoder, fingerprint };
  } finally {
    file.close();
  }
}

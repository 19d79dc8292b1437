/**
 * Opening a chat model: weights, tokenizer and an onnxruntime session over its decoder graph. A chat
 * model is a GGUF file or a Hugging Face checkpoint directory (config.json, *.safetensors,
 * tokenizer.json).
 */
import { createHash, type Hash } from "node:crypto";
import { closeSync, openSync, readFileSync, readSync, statSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { EpicacheError } from "@epicache/shared";
import { openGguf } from "../gguf";
import { openSafetensorsCheckpoint } from "../safetensors";
import { TextTokenizer } from "../tokenizer";
import { graphsDir } from "../paths";
import { configFromGguf, type LlamaConfig } from "./config";
import { Decoder, DEFAULT_RUNTIME, type RuntimeOptions } from "./decoder";
import { ensureDecoderGraph } from "./graph-cache";
import type { Numerics } from "./decoder-graph";
import { configFromHf } from "./hf-config";
import { hfWeights } from "./hf-weights";
import { ggufWeights, type WeightSource } from "./weights";

export interface ChatModel {
  path: string;
  numerics: Numerics;
  config: LlamaConfig;
  tokenizer: TextTokenizer;
  decoder: Decoder;
  /**
   * SHA-256 (hex, 16 chars) of the weights: of the GGUF file, or of a checkpoint's config.json and
   * safetensors files. Names built graphs and stored caches.
   */
  fingerprint: string;
}

/** Feeds a file's bytes to `hash`, streamed. */
function hashFile(hash: Hash, path: string): void {
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
}

/** SHA-256 of a file, streamed. */
export function sha256File(path: string): string {
  const hash = createHash("sha256");
  hashFile(hash, path);
  return hash.digest("hex");
}

/**
 * SHA-256 over several files, streamed: each file's name and size, then its bytes, so that moving
 * bytes from one file to the next changes the digest.
 */
export function sha256Files(paths: readonly string[]): string {
  const hash = createHash("sha256");
  for (const path of paths) {
    hash.update(`${basename(path)}\0${statSync(path).size}\0`);
    hashFile(hash, path);
  }
  return hash.digest("hex");
}

const fingerprints = new Map<string, string>();

/**
 * The fingerprint of `paths` (the first 16 hex digits of `digest()`), remembered while every file keeps
 * its inode, size and times: checking a model's fingerprint and then opening it hashes it once.
 */
function rememberedFingerprint(paths: readonly string[], digest: () => string): string {
  const key = paths
    .map((p) => {
      const s = statSync(p, { throwIfNoEntry: false });
      if (s === undefined) throw new EpicacheError("model_not_found", `${p} does not exist`);
      return `${resolve(p)}\0${s.dev}:${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`;
    })
    .join("\n");
  let fingerprint = fingerprints.get(key);
  if (fingerprint === undefined) {
    fingerprint = digest().slice(0, 16);
    fingerprints.set(key, fingerprint);
  }
  return fingerprint;
}

/** The files a checkpoint directory's fingerprint covers: config.json, then the safetensors files. */
function checkpointFiles(dir: string): string[] {
  const ckpt = openSafetensorsCheckpoint(dir);
  const files = ckpt.paths;
  ckpt.close();
  return [join(dir, "config.json"), ...files];
}

/**
 * {@link ChatModel.fingerprint} of the model at `path` (a .gguf file or a checkpoint directory) without
 * opening it: what a caller checks before paying for the decoder graph.
 */
export function modelFingerprint(path: string): string {
  let isDirectory: boolean;
  try {
    isDirectory = statSync(path).isDirectory();
  } catch (e) {
    throw new EpicacheError(
      "model_not_found",
      `chat model ${path} does not exist: ${(e as Error).message}`,
    );
  }
  if (isDirectory) {
    const files = checkpointFiles(path);
    return rememberedFingerprint(files, () => sha256Files(files));
  }
  if (!path.endsWith(".gguf")) {
    throw new EpicacheError(
      "model_unsupported",
      `${path}: a chat model is a .gguf file or a Hugging Face checkpoint directory`,
    );
  }
  return rememberedFingerprint([path], () => sha256File(path));
}

export interface OpenModelOptions {
  runtime?: RuntimeOptions;
  /**
   * "ggml" (default for GGUF files) rounds as llama.cpp's CPU kernels do, so generations match
   * llama.cpp's; "exact" computes in f32 throughout, and is the only choice (and the default) for
   * Hugging Face checkpoints.
   */
  numerics?: Numerics;
  /** Where built graphs live (default `$EPICACHE_HOME/graphs`). */
  graphRoot?: string;
  log?: (msg: string) => void;
}

/** Opens a chat model: a GGUF file, or a Hugging Face checkpoint directory. */
export async function openChatModel(path: string, opts: OpenModelOptions = {}): Promise<ChatModel> {
  let isDirectory: boolean;
  try {
    isDirectory = statSync(path).isDirectory();
  } catch (e) {
    throw new EpicacheError(
      "model_not_found",
      `chat model ${path} does not exist: ${(e as Error).message}`,
    );
  }
  if (isDirectory) return openHfChatModel(path, opts);
  if (!path.endsWith(".gguf")) {
    throw new EpicacheError(
      "model_unsupported",
      `${path}: a chat model is a .gguf file or a Hugging Face checkpoint directory`,
    );
  }
  const file = openGguf(path);
  try {
    const config = configFromGguf(file);
    const tokenizer = TextTokenizer.fromGguf(file);
    const fingerprint = rememberedFingerprint([path], () => sha256File(path));
    return await startModel(
      path,
      ggufWeights(file, config, fingerprint),
      tokenizer,
      opts.numerics ?? "ggml",
      opts,
    );
  } finally {
    file.close();
  }
}

/** A Hugging Face checkpoint: config.json, *.safetensors (sharded through the index json), tokenizer.json. */
async function openHfChatModel(dir: string, opts: OpenModelOptions): Promise<ChatModel> {
  // "fast" only changes how quantised GGUF matrices multiply; these weights are floats either way.
  const numerics = opts.numerics === "fast" ? "exact" : (opts.numerics ?? "exact");
  if (numerics !== "exact") {
    throw new EpicacheError(
      "invalid_argument",
      `${dir}: ${numerics} numerics reproduce llama.cpp on GGUF files; Hugging Face checkpoints run with exact numerics`,
    );
  }
  const configPath = join(dir, "config.json");
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(configPath, "utf8"));
  } catch (e) {
    const missing = (e as NodeJS.ErrnoException).code === "ENOENT";
    throw new EpicacheError(
      missing ? "model_not_found" : "model_invalid",
      `${configPath}: ${(e as Error).message}`,
    );
  }
  const config = configFromHf(json);
  const tokenizer = TextTokenizer.fromHf(dir);
  if (tokenizer.vocabSize > config.vocabSize) {
    throw new EpicacheError(
      "model_invalid",
      `${dir}: tokenizer.json has ${tokenizer.vocabSize} tokens but the model has only ${config.vocabSize}`,
    );
  }
  const files = checkpointFiles(dir);
  const fingerprint = rememberedFingerprint(files, () => sha256Files(files));
  const weights = hfWeights(dir, config, fingerprint);
  try {
    return await startModel(dir, weights, tokenizer, numerics, opts);
  } finally {
    weights.close();
  }
}

/** Builds (or finds) the decoder graph of `weights` and starts an onnxruntime session on it. */
async function startModel(
  path: string,
  weights: WeightSource,
  tokenizer: TextTokenizer,
  numerics: Numerics,
  opts: OpenModelOptions,
): Promise<ChatModel> {
  const { config, fingerprint } = weights;
  const graph = ensureDecoderGraph(weights, numerics, opts.graphRoot ?? graphsDir(), opts.log);
  const decoder = await Decoder.load(
    graph,
    config,
    numerics,
    opts.runtime ?? DEFAULT_RUNTIME,
    opts.log,
  );
  return { path, numerics, config, tokenizer, decoder, fingerprint };
}

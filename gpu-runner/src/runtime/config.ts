/**
 * The decoder's hyper-parameters, one shape for every Llama-family checkpoint we load
 * (Llama 3.x, Qwen2.5, Qwen3, SmolLM2).
 */
import { EpicacheError } from "@epicache/shared";
import { meta, metaOptional, type GgufFile } from "../gguf";

export interface RopeScaling {
  /** Llama 3.x frequency-dependent scaling ("llama3" in config.json). */
  type: "llama3";
  factor: number;
  lowFreqFactor: number;
  highFreqFactor: number;
  originalMaxPositionEmbeddings: number;
}

export interface LlamaConfig {
  architecture: "llama" | "qwen2" | "qwen3";
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  ropeTheta: number;
  ropeScaling: RopeScaling | null;
  rmsNormEps: number;
  contextLength: number;
  tiedEmbeddings: boolean;
  /** Qwen2: biases on the q, k and v projections. */
  qkvBias: boolean;
  /** Qwen3: RMSNorm over each head's q and k before RoPE. */
  qkNorm: boolean;
}

export function validateConfig(c: LlamaConfig): LlamaConfig {
  const positive = [
    "vocabSize",
    "hiddenSize",
    "intermediateSize",
    "numLayers",
    "numHeads",
    "numKvHeads",
    "headDim",
  ] as const;
  for (const k of positive) {
    if (!Number.isInteger(c[k]) || c[k] <= 0)
      throw new EpicacheError("model_unsupported", `model config: ${k} is ${c[k]}`);
  }
  if (c.numHeads % c.numKvHeads !== 0) {
    throw new EpicacheError(
      "model_unsupported",
      `model config: ${c.numHeads} query heads do not group over ${c.numKvHeads} KV heads`,
    );
  }
  if (c.headDim % 2 !== 0)
    throw new EpicacheError("model_unsupported", `model config: head dim ${c.headDim} is odd`);
  if (!(c.ropeTheta > 0) || !(c.rmsNormEps > 0))
    throw new EpicacheError(
      "model_unsupported",
      "model config: rope theta and rms eps must be positive",
    );
  return c;
}

/** The config of a GGUF file (`{arch}.*` keys). */
export function configFromGguf(file: Pick<GgufFile, "metadata" | "tensors">): LlamaConfig {
  const arch = meta(file, "general.architecture", "string");
  if (arch !== "llama" && arch !== "qwen2" && arch !== "qwen3") {
    throw new EpicacheError(
      "model_unsupported",
      `GGUF architecture "${arch}" is not supported (llama, qwen2, qwen3 are)`,
    );
  }
  const k = (name: string) => meta(file, `${arch}.${name}`, "number");
  const opt = (name: string) => metaOptional(file, `${arch}.${name}`);
  const hiddenSize = k("embedding_length");
  const numHeads = k("attention.head_count");
  const embd = file.tensors.get("token_embd.weight");
  if (!embd) throw new EpicacheError("gguf_invalid", "GGUF has no token_embd.weight tensor");
  const vocab = opt("vocab_size") ?? embd.dims[1];
  const keyLength = opt("attention.key_length");
  return validateConfig({
    architecture: arch,
    vocabSize: Number(vocab),
    hiddenSize,
    intermediateSize: k("feed_forward_length"),
    numLayers: k("block_count"),
    numHeads,
    numKvHeads: Number(opt("attention.head_count_kv") ?? numHeads),
    headDim: keyLength !== undefined ? Number(keyLength) : hiddenSize / numHeads,
    ropeTheta: Number(opt("rope.freq_base") ?? 10000),
    ropeScaling: null,
    rmsNormEps: k("attention.layer_norm_rms_epsilon"),
    contextLength: Number(opt("context_length") ?? 4096),
    tiedEmbeddings: !file.tensors.has("output.weight"),
    qkvBias: file.tensors.has("blk.0.attn_q.bias"),
    qkNorm: file.tensors.has("blk.0.attn_q_norm.weight"),
  });
}

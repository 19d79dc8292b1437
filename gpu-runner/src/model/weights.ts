/**
 * Decoder weights as f32 row-major matrices [out, in] (PyTorch's layout), read one tensor at a time so
 * that graph building never holds more than one large tensor in memory.
 */
import { EpicacheError } from "@epicache/shared";
import { dequantize, type GgufFile } from "../gguf";
import type { LlamaConfig } from "./config";

/** Names of one layer's tensors. Optional ones exist only in some families. */
export type LayerTensor =
  | "attnNorm" | "wq" | "wk" | "wv" | "wo" | "bq" | "bk" | "bv" | "qNorm" | "kNorm" | "ffnNorm" | "wGate" | "wUp" | "wDown";
export type GlobalTensor = "tokenEmbedding" | "outputNorm" | "output";

/** Where weights come from: a GGUF file or a Hugging Face checkpoint. */
export interface WeightSource {
  readonly config: LlamaConfig;
  /** A short stable identity of the weights (changes when any weight changes). */
  readonly fingerprint: string;
  global(name: GlobalTensor): Float32Array;
  layer(index: number, name: LayerTensor): Float32Array;
  close(): void;
}

const GGUF_LAYER_NAMES: Record<LayerTensor, string> = {
  attnNorm: "attn_norm.weight", wq: "attn_q.weight", wk: "attn_k.weight", wv: "attn_v.weight",
  wo: "attn_output.weight", bq: "attn_q.bias", bk: "attn_k.bias", bv: "attn_v.bias",
  qNorm: "attn_q_norm.weight", kNorm: "attn_k_norm.weight", ffnNorm: "ffn_norm.weight",
  wGate: "ffn_gate.weight", wUp: "ffn_up.weight", wDown: "ffn_down.weight",
};
const GGUF_GLOBAL_NAMES: Record<GlobalTensor, string> = {
  tokenEmbedding: "token_embd.weight", outputNorm: "output_norm.weight", output: "output.weight",
};

/**
 * llama.cpp's converter permutes the rows of Llama q/k projections so that RoPE rotates adjacent
 * pairs; this undoes it (row h·D + 2i + j of the file is row h·D + j·D/2 + i of the original), so the
 * graph applies one RoPE, the "rotate half" form, to every family.
 */
export function unpermuteRows(w: Float32Array, heads: number, headDim: number, cols: number): Float32Array {
  const out = new Float32Array(w.length);
  const half = headDim / 2;
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < half; i++) {
      for (let j = 0; j < 2; j++) {
        const src = (h * headDim + 2 * i + j) * cols;
        const dst = (h * headDim + j * half + i) * cols;
        out.set(w.subarray(src, src + cols), dst);
      }
    }
  }
  return out;
}

export function ggufWeights(file: GgufFile, config: LlamaConfig, fingerprint: string): WeightSource {
  const read = (name: string, expected: number): Float32Array => {
    const info = file.tensors.get(name);
    if (!info) throw new EpicacheError("gguf_invalid", `GGUF lacks tensor ${name}`);
    if (info.elementCount !== expected) {
      throw new EpicacheError("gguf_invalid", `GGUF tensor ${name} has ${info.elementCount} values, ${expected} expected`);
    }
    return dequantize(info.type, file.readTensorBytes(info), info.elementCount);
  };
  const c = config;
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const layerSizes: Record<LayerTensor, number> = {
    attnNorm: c.hiddenSize, wq: q * c.hiddenSize, wk: kv * c.hiddenSize, wv: kv * c.hiddenSize,
    wo: c.hiddenSize * q, bq: q, bk: kv, bv: kv, qNorm: c.headDim, kNorm: c.headDim, ffnNorm: c.hiddenSize,
    wGate: c.intermediateSize * c.hiddenSize, wUp: c.intermediateSize * c.hiddenSize, wDown: c.hiddenSize * c.intermediateSize,
  };
  const permuted = c.architecture === "llama";
  return {
    config, fingerprint,
    global(name) {
      const size = name === "outputNorm" ? c.hiddenSize : c.vocabSize * c.hiddenSize;
      if (name === "output" && c.tiedEmbeddings) return read(GGUF_GLOBAL_NAMES.tokenEmbedding, size);
      return read(GGUF_GLOBAL_NAMES[name], size);
    },
    layer(index, name) {
      const w = read(`blk.${index}.${GGUF_LAYER_NAMES[name]}`, layerSizes[name]);
      if (!permuted) return w;
      if (name === "wq") return unpermuteRows(w, c.numHeads, c.headDim, c.hiddenSize);
      if (name === "wk") return unpermuteRows(w, c.numKvHeads, c.headDim, c.hiddenSize);
      if (name === "bq") return unpermuteRows(w, c.numHeads, c.headDim, 1);
      if (name === "bk") return unpermuteRows(w, c.numKvHeads, c.headDim, 1);
      return w;
    },
    close: () => file.close(),
  };
}

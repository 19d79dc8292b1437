/**
 * Decoder weights as f32 row-major matrices [out, in] (PyTorch's layout), read one tensor at a time so
 * that graph building never holds more than one large tensor in memory.
 */
import { EpicacheError } from "@epicache/shared";
import { dequantize, f16ToF32, type GgufFile } from "../gguf";
import type { LlamaConfig } from "./config";

/** Names of one layer's tensors. Optional ones exist only in some families. */
export type LayerTensor =
  | "attnNorm" | "wq" | "wk" | "wv" | "wo" | "bq" | "bk" | "bv" | "qNorm" | "kNorm" | "ffnNorm" | "wGate" | "wUp" | "wDown";
export type GlobalTensor = "tokenEmbedding" | "outputNorm" | "output";

/**
 * How llama.cpp's CPU kernels round a matrix product's input for a weight of a given storage type:
 * quantised weights take the activations quantised to 8 bits per 32-value block (Q8_0/Q8_1), f16
 * weights take them rounded to f16, f32 weights take them as they are.
 */
export type ActivationRounding = "q8" | "f16" | "none";

/** Where weights come from: a GGUF file or a Hugging Face checkpoint. */
export interface WeightSource {
  readonly config: LlamaConfig;
  /** A short stable identity of the weights (changes when any weight changes). */
  readonly fingerprint: string;
  global(name: GlobalTensor): Float32Array;
  layer(index: number, name: LayerTensor): Float32Array;
  /** The activation rounding llama.cpp applies in front of this matrix (see {@link ActivationRounding}). */
  rounding(name: GlobalTensor | LayerTensor, layer?: number): ActivationRounding;
  /**
   * For Q4_1 matrices, the per-block minimum `m` of each row, [out, in/32] (see the graph's
   * Q8_1 correction); null for other storage types.
   */
  blockMins(name: GlobalTensor | LayerTensor, layer?: number): Float32Array | null;
  close(): void;
}

function roundingOf(type: string): ActivationRounding {
  if (type === "F32") return "none";
  if (type === "F16") return "f16";
  return "q8";
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
  const typeOf = (name: string) => file.tensors.get(name)?.type ?? "F32";
  const unpermute = (name: LayerTensor, w: Float32Array, cols: number) => {
    if (!permuted) return w;
    if (name === "wq" || name === "bq") return unpermuteRows(w, c.numHeads, c.headDim, name === "bq" ? 1 : cols);
    if (name === "wk" || name === "bk") return unpermuteRows(w, c.numKvHeads, c.headDim, name === "bk" ? 1 : cols);
    return w;
  };
  return {
    config, fingerprint,
    rounding(name, layer) {
      if (layer === undefined) {
        const n = name === "output" && c.tiedEmbeddings ? "tokenEmbedding" : (name as GlobalTensor);
        return roundingOf(typeOf(GGUF_GLOBAL_NAMES[n]));
      }
      return roundingOf(typeOf(`blk.${layer}.${GGUF_LAYER_NAMES[name as LayerTensor]}`));
    },
    global(name) {
      const size = name === "outputNorm" ? c.hiddenSize : c.vocabSize * c.hiddenSize;
      if (name === "output" && c.tiedEmbeddings) return read(GGUF_GLOBAL_NAMES.tokenEmbedding, size);
      return read(GGUF_GLOBAL_NAMES[name], size);
    },
    layer(index, name) {
      return unpermute(name, read(`blk.${index}.${GGUF_LAYER_NAMES[name]}`, layerSizes[name]), c.hiddenSize);
    },
    blockMins(name, layer) {
      const tensor =
        layer === undefined
          ? GGUF_GLOBAL_NAMES[name === "output" && c.tiedEmbeddings ? "tokenEmbedding" : (name as GlobalTensor)]
          : `blk.${layer}.${GGUF_LAYER_NAMES[name as LayerTensor]}`;
      const info = file.tensors.get(tensor);
      if (!info || info.type !== "Q4_1") return null;
      const bytes = file.readTensorBytes(info);
      const mins = new Float32Array(info.elementCount / 32);
      const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      for (let b = 0; b < mins.length; b++) mins[b] = f16ToF32(dv.getUint16(b * 20 + 2, true));
      return layer === undefined ? mins : unpermute(name as LayerTensor, mins, info.dims[0] / 32);
    },
    close: () => file.close(),
  };
}

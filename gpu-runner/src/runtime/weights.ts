/**
 * Decoder weights as f32 row-major matrices [out, in] (PyTorch's layout), read one tensor at a time so
 * that graph building never holds more than one large tensor in memory.
 */
import { EpicacheError } from "@epicache/shared";
import { dequantize, f16ToF32, type GgufFile } from "../gguf";
import type { LlamaConfig } from "./config";

/** Names of one layer's tensors. Optional ones exist only in some families. */
export type LayerTensor =
  | "attnNorm"
  | "wq"
  | "wk"
  | "wv"
  | "wo"
  | "bq"
  | "bk"
  | "bv"
  | "qNorm"
  | "kNorm"
  | "ffnNorm"
  | "wGate"
  | "wUp"
  | "wDown";
export type GlobalTensor = "tokenEmbedding" | "outputNorm" | "output";

/** Where weights come from: a GGUF file or a Hugging Face checkpoint. */
export interface WeightSource {
  readonly config: LlamaConfig;
  /** A short stable identity of the weights (changes when any weight changes). */
  readonly fingerprint: string;
  global(name: GlobalTensor): Float32Array;
  layer(index: number, name: LayerTensor): Float32Array;
  /** How the tensor is stored: a ggml type name ("F32", "F16", "BF16", "Q4_1", "Q8_0", …). */
  storage(name: GlobalTensor | LayerTensor, layer?: number): string;
  /**
   * The stored blocks of a Q4_1 or Q8_0 matrix (for the graph's `ggml` numerics, which compute as
   * llama.cpp's integer kernels do); null for other storage types.
   */
  blocks(name: GlobalTensor | LayerTensor, layer?: number): QuantBlocks | null;
  close(): void;
}

/** A block-quantised matrix [out, in] as llama.cpp stores it, blocks of 32 along `in`. */
export interface QuantBlocks {
  type: "Q4_1" | "Q8_0";
  /** Integer codes as floats, [out, in]: 0..15 for Q4_1, −128..127 for Q8_0. */
  codes: Float32Array;
  /** Scale d of each block, [out, in/32]. */
  scales: Float32Array;
  /** Q4_1's per-block minimum m (value = code·d + m), [out, in/32]; null for Q8_0. */
  mins: Float32Array | null;
}

/** Reads the blocks of a Q4_1 or Q8_0 tensor. */
export function readBlocks(type: string, bytes: Uint8Array, count: number): QuantBlocks | null {
  if (type !== "Q4_1" && type !== "Q8_0") return null;
  const nb = count / 32;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const codes = new Float32Array(count);
  const scales = new Float32Array(nb);
  if (type === "Q8_0") {
    for (let b = 0; b < nb; b++) {
      scales[b] = f16ToF32(dv.getUint16(b * 34, true));
      for (let j = 0; j < 32; j++) codes[b * 32 + j] = dv.getInt8(b * 34 + 2 + j);
    }
    return { type, codes, scales, mins: null };
  }
  const mins = new Float32Array(nb);
  for (let b = 0; b < nb; b++) {
    scales[b] = f16ToF32(dv.getUint16(b * 20, true));
    mins[b] = f16ToF32(dv.getUint16(b * 20 + 2, true));
    for (let j = 0; j < 16; j++) {
      const q = bytes[b * 20 + 4 + j];
      codes[b * 32 + j] = q & 0x0f;
      codes[b * 32 + j + 16] = q >> 4;
    }
  }
  return { type, codes, scales, mins };
}

const GGUF_LAYER_NAMES: Record<LayerTensor, string> = {
  attnNorm: "attn_norm.weight",
  wq: "attn_q.weight",
  wk: "attn_k.weight",
  wv: "attn_v.weight",
  wo: "attn_output.weight",
  bq: "attn_q.bias",
  bk: "attn_k.bias",
  bv: "attn_v.bias",
  qNorm: "attn_q_norm.weight",
  kNorm: "attn_k_norm.weight",
  ffnNorm: "ffn_norm.weight",
  wGate: "ffn_gate.weight",
  wUp: "ffn_up.weight",
  wDown: "ffn_down.weight",
};
const GGUF_GLOBAL_NAMES: Record<GlobalTensor, string> = {
  tokenEmbedding: "token_embd.weight",
  outputNorm: "output_norm.weight",
  output: "output.weight",
};

/**
 * llama.cpp's converter permutes the rows of Llama q/k projections so that RoPE rotates adjacent
 * pairs; this undoes it (row h·D + 2i + j of the file is row h·D + j·D/2 + i of the original), so the
 * graph applies one RoPE, the "rotate half" form, to every family.
 */
export function unpermuteRows(
  w: Float32Array,
  heads: number,
  headDim: number,
  cols: number,
): Float32Array {
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

export function ggufWeights(
  file: GgufFile,
  config: LlamaConfig,
  fingerprint: string,
): WeightSource {
  const read = (name: string, expected: number): Float32Array => {
    const info = file.tensors.get(name);
    if (!info) throw new EpicacheError("gguf_invalid", `GGUF lacks tensor ${name}`);
    if (info.elementCount !== expected) {
      throw new EpicacheError(
        "gguf_invalid",
        `GGUF tensor ${name} has ${info.elementCount} values, ${expected} expected`,
      );
    }
    return dequantize(info.type, file.readTensorBytes(info), info.elementCount);
  };
  const c = config;
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const layerSizes: Record<LayerTensor, number> = {
    attnNorm: c.hiddenSize,
    wq: q * c.hiddenSize,
    wk: kv * c.hiddenSize,
    wv: kv * c.hiddenSize,
    wo: c.hiddenSize * q,
    bq: q,
    bk: kv,
    bv: kv,
    qNorm: c.headDim,
    kNorm: c.headDim,
    ffnNorm: c.hiddenSize,
    wGate: c.intermediateSize * c.hiddenSize,
    wUp: c.intermediateSize * c.hiddenSize,
    wDown: c.hiddenSize * c.intermediateSize,
  };
  const permuted = c.architecture === "llama";
  const typeOf = (name: string) => file.tensors.get(name)?.type ?? "F32";
  const unpermute = (name: LayerTensor, w: Float32Array, cols: number) => {
    if (!permuted) return w;
    if (name === "wq" || name === "bq")
      return unpermuteRows(w, c.numHeads, c.headDim, name === "bq" ? 1 : cols);
    if (name === "wk" || name === "bk")
      return unpermuteRows(w, c.numKvHeads, c.headDim, name === "bk" ? 1 : cols);
    return w;
  };
  return {
    config,
    fingerprint,
    storage(name, layer) {
      if (layer === undefined) {
        const n = name === "output" && c.tiedEmbeddings ? "tokenEmbedding" : (name as GlobalTensor);
        return typeOf(GGUF_GLOBAL_NAMES[n]);
      }
      return typeOf(`blk.${layer}.${GGUF_LAYER_NAMES[name as LayerTensor]}`);
    },
    global(name) {
      const size = name === "outputNorm" ? c.hiddenSize : c.vocabSize * c.hiddenSize;
      if (name === "output" && c.tiedEmbeddings)
        return read(GGUF_GLOBAL_NAMES.tokenEmbedding, size);
      return read(GGUF_GLOBAL_NAMES[name], size);
    },
    layer(index, name) {
      return unpermute(
        name,
        read(`blk.${index}.${GGUF_LAYER_NAMES[name]}`, layerSizes[name]),
        c.hiddenSize,
      );
    },
    blocks(name, layer) {
      const tensor =
        layer === undefined
          ? GGUF_GLOBAL_NAMES[
              name === "output" && c.tiedEmbeddings ? "tokenEmbedding" : (name as GlobalTensor)
            ]
          : `blk.${layer}.${GGUF_LAYER_NAMES[name as LayerTensor]}`;
      const info = file.tensors.get(tensor);
      if (!info) return null;
      const blocks = readBlocks(info.type, file.readTensorBytes(info), info.elementCount);
      if (!blocks || layer === undefined) return blocks;
      const cols = info.dims[0];
      const n = name as LayerTensor;
      return {
        type: blocks.type,
        codes: unpermute(n, blocks.codes, cols),
        scales: unpermute(n, blocks.scales, cols / 32),
        mins: blocks.mins && unpermute(n, blocks.mins, cols / 32),
      };
    },
    close: () => file.close(),
  };
}

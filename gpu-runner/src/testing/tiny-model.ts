/**
 * Tiny random Llama-family checkpoints as GGUF files, for exact invariants: the graph against the
 * float64 reference, block-wise against one-shot prefill, greedy tokens. The tokenizer is byte-level
 * BPE over the 256 byte symbols plus a few merges and ChatML control tokens.
 */
import type { GgmlTypeName } from "../gguf";
import { seededRandom } from "../runtime/sampling";
import type { LlamaConfig } from "../runtime/config";
import { writeGguf, type MetaEntry, type TensorEntry } from "./gguf-writer";

/** GPT-2's byte → printable character map (bytes_to_unicode). */
export function byteToUnicode(): string[] {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  }
  const out: string[] = new Array(256);
  bs.forEach((b, i) => (out[b] = String.fromCodePoint(cs[i])));
  return out;
}

export interface TinySpec {
  architecture?: LlamaConfig["architecture"];
  hiddenSize?: number;
  numHeads?: number;
  numKvHeads?: number;
  headDim?: number;
  intermediateSize?: number;
  numLayers?: number;
  tied?: boolean;
  /** Storage type of the matrices (norms stay F32). */
  type?: GgmlTypeName;
  seed?: number;
}

const SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];
/** The tiny vocabulary's BPE merges (over GPT-2 byte symbols). */
export const TINY_MERGES = ["Ġ t", "h e", "Ġt he", "i n", "Ġ a", "e r", "o n", "Ġ s", "r e", "l l"];
/** A ChatML chat template (Qwen, SmolLM2). */
export const CHATML_TEMPLATE =
  "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/** The GGUF bytes and config of a tiny random model. */
export function tinyGguf(spec: TinySpec = {}): {
  bytes: Uint8Array;
  config: LlamaConfig;
  original: Map<string, Float32Array>;
} {
  const arch = spec.architecture ?? "llama";
  const E = spec.hiddenSize ?? 64;
  const H = spec.numHeads ?? 4;
  const KV = spec.numKvHeads ?? 2;
  const D = spec.headDim ?? E / H;
  const F = spec.intermediateSize ?? 96;
  const L = spec.numLayers ?? 2;
  const tied = spec.tied ?? true;
  const type = spec.type ?? "F32";
  const rand = seededRandom(spec.seed ?? 1);
  const b2u = byteToUnicode();
  const vocab = [...SPECIALS, ...b2u, ...TINY_MERGES.map((m) => m.replace(" ", ""))];
  // Vocabulary size padded to a multiple of 32 so quantised embeddings have whole blocks.
  while (vocab.length % 32 !== 0) vocab.push(`<unused${vocab.length}>`);
  const V = vocab.length;
  const tokenTypes = vocab.map((t, i) => (i < SPECIALS.length || t.startsWith("<unused") ? 3 : 1));
  const randn = (n: number, scale: number) => {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = (rand() * 2 - 1) * scale;
    return a;
  };
  const ones = (n: number, jitter: number) => Float32Array.from(randn(n, jitter), (v) => 1 + v);
  // Tensors as a Hugging Face checkpoint holds them, before llama.cpp's q/k permutation.
  const original = new Map<string, Float32Array>();
  const permute = (w: Float32Array, heads: number, cols: number) => {
    original.set(heads === H ? "wq" : "wk", w);
    // llama.cpp's converter layout for Llama q/k (rows of each head interleaved by halves).
    if (arch !== "llama") return w;
    const out = new Float32Array(w.length);
    const half = D / 2;
    for (let h = 0; h < heads; h++)
      for (let i = 0; i < half; i++)
        for (let j = 0; j < 2; j++)
          out.set(
            w.subarray((h * D + j * half + i) * cols, (h * D + j * half + i + 1) * cols),
            (h * D + 2 * i + j) * cols,
          );
    return out;
  };
  const tensors: TensorEntry[] = [];
  const s = 1 / Math.sqrt(E);
  tensors.push({ name: "token_embd.weight", dims: [E, V], type, data: randn(V * E, 1) });
  for (let l = 0; l < L; l++) {
    const p = `blk.${l}.`;
    tensors.push({ name: `${p}attn_norm.weight`, dims: [E], type: "F32", data: ones(E, 0.2) });
    tensors.push({
      name: `${p}attn_q.weight`,
      dims: [E, H * D],
      type,
      data: permute(randn(H * D * E, s * 2), H, E),
    });
    tensors.push({
      name: `${p}attn_k.weight`,
      dims: [E, KV * D],
      type,
      data: permute(randn(KV * D * E, s * 2), KV, E),
    });
    tensors.push({
      name: `${p}attn_v.weight`,
      dims: [E, KV * D],
      type,
      data: randn(KV * D * E, s),
    });
    if (arch === "qwen2") {
      tensors.push({
        name: `${p}attn_q.bias`,
        dims: [H * D],
        type: "F32",
        data: randn(H * D, 0.5),
      });
      tensors.push({
        name: `${p}attn_k.bias`,
        dims: [KV * D],
        type: "F32",
        data: randn(KV * D, 0.5),
      });
      tensors.push({
        name: `${p}attn_v.bias`,
        dims: [KV * D],
        type: "F32",
        data: randn(KV * D, 0.5),
      });
    }
    if (arch === "qwen3") {
      tensors.push({ name: `${p}attn_q_norm.weight`, dims: [D], type: "F32", data: ones(D, 0.2) });
      tensors.push({ name: `${p}attn_k_norm.weight`, dims: [D], type: "F32", data: ones(D, 0.2) });
    }
    tensors.push({
      name: `${p}attn_output.weight`,
      dims: [H * D, E],
      type,
      data: randn(E * H * D, s),
    });
    tensors.push({ name: `${p}ffn_norm.weight`, dims: [E], type: "F32", data: ones(E, 0.2) });
    tensors.push({ name: `${p}ffn_gate.weight`, dims: [E, F], type, data: randn(F * E, s) });
    tensors.push({ name: `${p}ffn_up.weight`, dims: [E, F], type, data: randn(F * E, s) });
    tensors.push({
      name: `${p}ffn_down.weight`,
      dims: [F, E],
      type,
      data: randn(E * F, 1 / Math.sqrt(F)),
    });
  }
  tensors.push({ name: "output_norm.weight", dims: [E], type: "F32", data: ones(E, 0.2) });
  if (!tied) tensors.push({ name: "output.weight", dims: [E, V], type, data: randn(V * E, s * 4) });

  const meta: MetaEntry[] = [
    ["general.architecture", "string", arch],
    ["general.name", "string", `tiny-${arch}`],
    [`${arch}.block_count`, "u32", L],
    [`${arch}.context_length`, "u32", 2048],
    [`${arch}.embedding_length`, "u32", E],
    [`${arch}.feed_forward_length`, "u32", F],
    [`${arch}.attention.head_count`, "u32", H],
    [`${arch}.attention.head_count_kv`, "u32", KV],
    [`${arch}.attention.key_length`, "u32", D],
    [`${arch}.rope.freq_base`, "f32", 10000],
    [`${arch}.attention.layer_norm_rms_epsilon`, "f32", 1e-5],
    ["tokenizer.ggml.model", "string", "gpt2"],
    ["tokenizer.ggml.pre", "string", "smollm"],
    ["tokenizer.ggml.tokens", "strings", vocab],
    ["tokenizer.ggml.token_type", "i32s", tokenTypes],
    ["tokenizer.ggml.merges", "strings", TINY_MERGES],
    ["tokenizer.ggml.bos_token_id", "u32", 1],
    ["tokenizer.ggml.eos_token_id", "u32", 2],
    ["tokenizer.ggml.add_bos_token", "bool", false],
    ["tokenizer.chat_template", "string", CHATML_TEMPLATE],
  ];
  const config: LlamaConfig = {
    architecture: arch,
    vocabSize: V,
    hiddenSize: E,
    intermediateSize: F,
    numLayers: L,
    numHeads: H,
    numKvHeads: KV,
    headDim: D,
    ropeTheta: 10000,
    ropeScaling: null,
    rmsNormEps: Math.fround(1e-5),
    contextLength: 2048,
    tiedEmbeddings: tied,
    qkvBias: arch === "qwen2",
    qkNorm: arch === "qwen3",
  };
  return { bytes: writeGguf(meta, tensors), config, original };
}

/**
 * Tiny random Hugging Face checkpoints, written as transformers would save them: config.json,
 * model.safetensors (or shards with model.safetensors.index.json), generation_config.json,
 * tokenizer.json and tokenizer_config.json (with a ChatML template). Families: Llama (optionally
 * with Llama 3 RoPE scaling), Qwen2 (q/k/v biases) and Qwen3 (q/k norm, explicit head_dim), tied or
 * untied heads, in BF16, F16 or F32.
 *
 * The tokenizer is the byte-level BPE of tiny-model.ts (256 byte symbols and a few merges), laid out
 * as Llama 3 and Qwen lay theirs: BPE tokens first, then the added special tokens.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { LlamaConfig } from "../runtime/config";
import { seededRandom } from "../runtime/sampling";
import { preTokenizerFor } from "../tokenizer";
import {
  roundTo,
  writeSafetensors,
  type SafetensorsEntry,
  type WritableDtype,
} from "./safetensors-writer";
import { byteToUnicode, CHATML_TEMPLATE, TINY_MERGES } from "./tiny-model";

export interface TinyHfSpec {
  architecture?: LlamaConfig["architecture"];
  hiddenSize?: number;
  numHeads?: number;
  numKvHeads?: number;
  /** Written to config.json as head_dim (Qwen3 always writes one); default hidden/heads. */
  headDim?: number;
  intermediateSize?: number;
  numLayers?: number;
  tied?: boolean;
  /** Storage type of every tensor, norms included (as Hugging Face stores them). */
  dtype?: WritableDtype;
  /** Llama 3 frequency-dependent RoPE scaling, with a short original context so every regime shows. */
  ropeScaling?: boolean;
  /** More than 1: that many shards and an index json. */
  shards?: number;
  /** The llama.cpp name of the pre-tokenizer (default: llama-bpe for Llama, qwen2 for Qwen). */
  pre?: string;
  /** Whether the tokenizer.json post-processor adds BOS (default: for Llama, as Llama 3 does). */
  bos?: boolean;
  seed?: number;
}

export interface TinyHfCheckpoint {
  dir: string;
  /** The config the loader should derive from config.json. */
  config: LlamaConfig;
  /** Every tensor as stored (values already rounded to the dtype), by checkpoint name. */
  tensors: Map<string, Float32Array>;
}

/** Special tokens after the BPE vocabulary, padded with reserved ones to 288 tokens. */
const SPECIALS = ["<|begin_of_text|>", "<|endoftext|>", "<|im_start|>", "<|im_end|>"];
const VOCAB_SIZE = 288;

/** The tokenizer.json and tokenizer_config.json of the tiny vocabulary. */
export function tinyHfTokenizerFiles(opts: { pre: string; bos: boolean; nfc: boolean }): {
  tokenizer: object;
  config: Record<string, unknown>;
} {
  const b2u = byteToUnicode();
  const bpe = [...b2u, ...TINY_MERGES.map((m) => m.replace(" ", ""))];
  const specials = [...SPECIALS];
  while (bpe.length + specials.length < VOCAB_SIZE)
    specials.push(`<|reserved_special_token_${specials.length - SPECIALS.length}|>`);
  const idOf = (t: string) => bpe.length + specials.indexOf(t);
  const added = specials.map((content, i) => ({
    id: bpe.length + i,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  }));
  const bosToken = SPECIALS[0];
  const postProcessor = opts.bos
    ? {
        type: "Sequence",
        processors: [
          { type: "ByteLevel", add_prefix_space: true, trim_offsets: false, use_regex: true },
          {
            type: "TemplateProcessing",
            single: [
              { SpecialToken: { id: bosToken, type_id: 0 } },
              { Sequence: { id: "A", type_id: 0 } },
            ],
            pair: [
              { SpecialToken: { id: bosToken, type_id: 0 } },
              { Sequence: { id: "A", type_id: 0 } },
              { SpecialToken: { id: bosToken, type_id: 1 } },
              { Sequence: { id: "B", type_id: 1 } },
            ],
            special_tokens: {
              [bosToken]: { id: bosToken, ids: [idOf(bosToken)], tokens: [bosToken] },
            },
          },
        ],
      }
    : { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false };
  const tokenizer = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: opts.nfc ? { type: "NFC" } : null,
    pre_tokenizer: preTokenizerFor(opts.pre),
    post_processor: postProcessor,
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: opts.bos,
      vocab: Object.fromEntries(bpe.map((t, i) => [t, i])),
      // Newer exports write merges as pairs; older ones as "a b" strings. Both occur.
      merges: opts.bos ? TINY_MERGES.map((m) => m.split(" ")) : TINY_MERGES,
    },
  };
  const config = {
    tokenizer_class: "PreTrainedTokenizerFast",
    bos_token: opts.bos ? bosToken : null,
    eos_token: "<|im_end|>",
    pad_token: "<|endoftext|>",
    chat_template: CHATML_TEMPLATE,
    clean_up_tokenization_spaces: false,
    model_max_length: 2048,
    added_tokens_decoder: Object.fromEntries(added.map(({ id, ...t }) => [String(id), t])),
  };
  return { tokenizer, config };
}

/** Writes a tiny random checkpoint into `dir` (created if needed). */
export function writeTinyHfCheckpoint(dir: string, spec: TinyHfSpec = {}): TinyHfCheckpoint {
  const arch = spec.architecture ?? "llama";
  const E = spec.hiddenSize ?? 64;
  const H = spec.numHeads ?? 4;
  const KV = spec.numKvHeads ?? 2;
  const D = spec.headDim ?? E / H;
  const F = spec.intermediateSize ?? 96;
  const L = spec.numLayers ?? 2;
  const V = VOCAB_SIZE;
  const tied = spec.tied ?? true;
  const dtype = spec.dtype ?? "BF16";
  const bos = spec.bos ?? arch === "llama";
  const rand = seededRandom(spec.seed ?? 1);
  const randn = (n: number, scale: number) => {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = (rand() * 2 - 1) * scale;
    return a;
  };
  const ones = (n: number, jitter: number) => Float32Array.from(randn(n, jitter), (v) => 1 + v);

  // Tensors in the order transformers saves them, PyTorch shapes ([out, in] for matrices).
  const entries: SafetensorsEntry[] = [];
  const add = (name: string, shape: number[], data: Float32Array) =>
    entries.push({ name, dtype, shape, data });
  const s = 1 / Math.sqrt(E);
  add("model.embed_tokens.weight", [V, E], randn(V * E, 1));
  for (let l = 0; l < L; l++) {
    const p = `model.layers.${l}.`;
    add(`${p}input_layernorm.weight`, [E], ones(E, 0.2));
    add(`${p}self_attn.q_proj.weight`, [H * D, E], randn(H * D * E, s * 2));
    add(`${p}self_attn.k_proj.weight`, [KV * D, E], randn(KV * D * E, s * 2));
    add(`${p}self_attn.v_proj.weight`, [KV * D, E], randn(KV * D * E, s));
    if (arch === "qwen2") {
      add(`${p}self_attn.q_proj.bias`, [H * D], randn(H * D, 0.5));
      add(`${p}self_attn.k_proj.bias`, [KV * D], randn(KV * D, 0.5));
      add(`${p}self_attn.v_proj.bias`, [KV * D], randn(KV * D, 0.5));
    }
    if (arch === "qwen3") {
      add(`${p}self_attn.q_norm.weight`, [D], ones(D, 0.2));
      add(`${p}self_attn.k_norm.weight`, [D], ones(D, 0.2));
    }
    add(`${p}self_attn.o_proj.weight`, [E, H * D], randn(E * H * D, s));
    add(`${p}post_attention_layernorm.weight`, [E], ones(E, 0.2));
    add(`${p}mlp.gate_proj.weight`, [F, E], randn(F * E, s));
    add(`${p}mlp.up_proj.weight`, [F, E], randn(F * E, s));
    add(`${p}mlp.down_proj.weight`, [E, F], randn(E * F, 1 / Math.sqrt(F)));
  }
  add("model.norm.weight", [E], ones(E, 0.2));
  if (!tied) add("lm_head.weight", [V, E], randn(V * E, s * 4));

  mkdirSync(dir, { recursive: true });
  const shards = Math.max(1, spec.shards ?? 1);
  if (shards === 1) {
    writeFileSync(join(dir, "model.safetensors"), writeSafetensors(entries, { format: "pt" }));
  } else {
    const weightMap: Record<string, string> = {};
    const per = Math.ceil(entries.length / shards);
    let totalSize = 0;
    for (let i = 0; i < shards; i++) {
      const name = `model-${String(i + 1).padStart(5, "0")}-of-${String(shards).padStart(5, "0")}.safetensors`;
      const part = entries.slice(i * per, (i + 1) * per);
      for (const t of part) {
        weightMap[t.name] = name;
        totalSize += t.data.length * (dtype === "F32" ? 4 : 2);
      }
      writeFileSync(join(dir, name), writeSafetensors(part, { format: "pt" }));
    }
    writeFileSync(
      join(dir, "model.safetensors.index.json"),
      JSON.stringify({ metadata: { total_size: totalSize }, weight_map: weightMap }, null, 2),
    );
  }

  const ropeScaling = spec.ropeScaling
    ? {
        type: "llama3" as const,
        factor: 8,
        lowFreqFactor: 1,
        highFreqFactor: 4,
        originalMaxPositionEmbeddings: 64,
      }
    : null;
  const { tokenizer, config: tokenizerConfig } = tinyHfTokenizerFiles({
    pre: spec.pre ?? (arch === "llama" ? "llama-bpe" : "qwen2"),
    bos,
    nfc: arch !== "llama",
  });
  const bpeCount = 256 + TINY_MERGES.length;
  const [bosId, eotId, , imEndId] = SPECIALS.map((_, i) => bpeCount + i);
  const architectures = {
    llama: "LlamaForCausalLM",
    qwen2: "Qwen2ForCausalLM",
    qwen3: "Qwen3ForCausalLM",
  } as const;
  const configJson: Record<string, unknown> = {
    architectures: [architectures[arch]],
    model_type: arch,
    attention_dropout: 0,
    bos_token_id: bosId,
    eos_token_id: arch === "llama" ? [eotId, imEndId] : imEndId,
    hidden_act: "silu",
    hidden_size: E,
    initializer_range: 0.02,
    intermediate_size: F,
    max_position_embeddings: 2048,
    num_attention_heads: H,
    num_hidden_layers: L,
    num_key_value_heads: KV,
    rms_norm_eps: 1e-5,
    rope_scaling: ropeScaling && {
      factor: ropeScaling.factor,
      low_freq_factor: ropeScaling.lowFreqFactor,
      high_freq_factor: ropeScaling.highFreqFactor,
      original_max_position_embeddings: ropeScaling.originalMaxPositionEmbeddings,
      rope_type: "llama3",
    },
    rope_theta: 10000,
    tie_word_embeddings: tied,
    torch_dtype: { BF16: "bfloat16", F16: "float16", F32: "float32" }[dtype],
    transformers_version: "4.51.0",
    use_cache: true,
    vocab_size: V,
    ...(arch === "llama" ? { attention_bias: false, mlp_bias: false, pretraining_tp: 1 } : {}),
    ...(arch === "qwen2"
      ? { use_sliding_window: false, sliding_window: 2048, max_window_layers: L }
      : {}),
    ...(arch === "qwen3"
      ? {
          attention_bias: false,
          use_sliding_window: false,
          sliding_window: null,
          max_window_layers: L,
        }
      : {}),
    ...(spec.headDim !== undefined || arch === "qwen3" ? { head_dim: D } : {}),
  };
  writeFileSync(join(dir, "config.json"), JSON.stringify(configJson, null, 2));
  writeFileSync(
    join(dir, "generation_config.json"),
    JSON.stringify(
      {
        bos_token_id: bosId,
        eos_token_id: configJson.eos_token_id,
        transformers_version: "4.51.0",
      },
      null,
      2,
    ),
  );
  writeFileSync(join(dir, "tokenizer.json"), JSON.stringify(tokenizer));
  writeFileSync(join(dir, "tokenizer_config.json"), JSON.stringify(tokenizerConfig, null, 2));

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
    ropeScaling,
    rmsNormEps: 1e-5,
    contextLength: 2048,
    tiedEmbeddings: tied,
    qkvBias: arch === "qwen2",
    qkNorm: arch === "qwen3",
  };
  return { dir, config, tensors: new Map(entries.map((t) => [t.name, roundTo(dtype, t.data)])) };
}

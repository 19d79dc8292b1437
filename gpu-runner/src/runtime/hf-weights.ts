/**
 * Decoder weights from a Hugging Face checkpoint's safetensors files (BF16, F16 or F32), read one
 * tensor at a time. Hugging Face stores matrices [out, in] as the graph wants them, and its q/k rows
 * are already in the "rotate half" layout the graph's RoPE uses: unlike GGUF, nothing is unpermuted.
 */
import { EpicacheError } from "@epicache/shared";
import { openSafetensorsCheckpoint } from "../safetensors";
import type { LlamaConfig } from "./config";
import type { GlobalTensor, LayerTensor, WeightSource } from "./weights";

const HF_LAYER_NAMES: Record<LayerTensor, string> = {
  attnNorm: "input_layernorm.weight",
  wq: "self_attn.q_proj.weight",
  wk: "self_attn.k_proj.weight",
  wv: "self_attn.v_proj.weight",
  wo: "self_attn.o_proj.weight",
  bq: "self_attn.q_proj.bias",
  bk: "self_attn.k_proj.bias",
  bv: "self_attn.v_proj.bias",
  qNorm: "self_attn.q_norm.weight",
  kNorm: "self_attn.k_norm.weight",
  ffnNorm: "post_attention_layernorm.weight",
  wGate: "mlp.gate_proj.weight",
  wUp: "mlp.up_proj.weight",
  wDown: "mlp.down_proj.weight",
};
const HF_GLOBAL_NAMES: Record<GlobalTensor, string> = {
  tokenEmbedding: "model.embed_tokens.weight",
  outputNorm: "model.norm.weight",
  output: "lm_head.weight",
};

/** The tensors a config needs, by checkpoint name, with their PyTorch shapes ([out, in] for matrices). */
export function expectedHfTensors(c: LlamaConfig): Map<string, number[]> {
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const E = c.hiddenSize,
    F = c.intermediateSize;
  const layer: Partial<Record<LayerTensor, number[]>> = {
    attnNorm: [E],
    wq: [q, E],
    wk: [kv, E],
    wv: [kv, E],
    wo: [E, q],
    ffnNorm: [E],
    wGate: [F, E],
    wUp: [F, E],
    wDown: [E, F],
    ...(c.qkvBias ? { bq: [q], bk: [kv], bv: [kv] } : {}),
    ...(c.qkNorm ? { qNorm: [c.headDim], kNorm: [c.headDim] } : {}),
  };
  const out = new Map<string, number[]>([
    [HF_GLOBAL_NAMES.tokenEmbedding, [c.vocabSize, E]],
    [HF_GLOBAL_NAMES.outputNorm, [E]],
  ]);
  if (!c.tiedEmbeddings) out.set(HF_GLOBAL_NAMES.output, [c.vocabSize, E]);
  for (let l = 0; l < c.numLayers; l++) {
    for (const [name, shape] of Object.entries(layer))
      out.set(`model.layers.${l}.${HF_LAYER_NAMES[name as LayerTensor]}`, shape);
  }
  return out;
}

/** Tensors a checkpoint may hold that the decoder does not need (older Llama exports store RoPE's inv_freq). */
const IGNORED = /^model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq$/;

/**
 * Opens the safetensors files of a checkpoint directory as a {@link WeightSource}. Every tensor the
 * config needs is checked (present, right shape, a float dtype) before anything is read; a tensor
 * the decoder would not use (an o_proj bias, an extra layer) is `model_unsupported`, since ignoring
 * it would compute a different model.
 */
export function hfWeights(dir: string, config: LlamaConfig, fingerprint: string): WeightSource {
  const ckpt = openSafetensorsCheckpoint(dir);
  try {
    const expected = expectedHfTensors(config);
    for (const [name, shape] of expected) {
      const t = ckpt.tensors.get(name);
      if (!t) throw new EpicacheError("model_invalid", `${dir}: the checkpoint lacks ${name}`);
      if (t.info.shape.length !== shape.length || t.info.shape.some((d, i) => d !== shape[i])) {
        throw new EpicacheError(
          "model_invalid",
          `${dir}: ${name} has shape [${t.info.shape}], [${shape}] expected from config.json`,
        );
      }
      if (t.info.dtype !== "BF16" && t.info.dtype !== "F16" && t.info.dtype !== "F32") {
        throw new EpicacheError(
          "model_unsupported",
          `${dir}: ${name} is ${t.info.dtype} (BF16, F16 and F32 are supported)`,
        );
      }
    }
    for (const name of ckpt.tensors.keys()) {
      // A tied head stored anyway (some exporters do) is the embedding again: harmless.
      if (
        expected.has(name) ||
        IGNORED.test(name) ||
        (config.tiedEmbeddings && name === HF_GLOBAL_NAMES.output)
      )
        continue;
      throw new EpicacheError(
        "model_unsupported",
        `${dir}: tensor ${name} is not part of a ${config.architecture} decoder as config.json describes it`,
      );
    }
  } catch (e) {
    ckpt.close();
    throw e;
  }

  const c = config;
  const globalName = (name: GlobalTensor) =>
    HF_GLOBAL_NAMES[name === "output" && c.tiedEmbeddings ? "tokenEmbedding" : name];
  const tensorName = (name: GlobalTensor | LayerTensor, layer?: number) =>
    layer === undefined
      ? globalName(name as GlobalTensor)
      : `model.layers.${layer}.${HF_LAYER_NAMES[name as LayerTensor]}`;
  return {
    config,
    fingerprint,
    global: (name) => ckpt.read(globalName(name)),
    layer: (index, name) => ckpt.read(tensorName(name, index)),
    storage(name, layer) {
      const t = ckpt.tensors.get(tensorName(name, layer));
      if (!t)
        throw new EpicacheError(
          "model_invalid",
          `${dir}: the checkpoint lacks ${tensorName(name, layer)}`,
        );
      return t.info.dtype;
    },
    blocks: () => null,
    close: () => ckpt.close(),
  };
}

/**
 * The decoder config of a Hugging Face checkpoint (`config.json`), for the architectures the graph
 * computes: LlamaForCausalLM (Llama 3.x, SmolLM2), Qwen2ForCausalLM (Qwen2.5) and Qwen3ForCausalLM.
 * Defaults are transformers' (LlamaConfig, Qwen2Config, Qwen3Config); options that change the
 * computation in ways the graph does not follow (o_proj or MLP biases, sliding windows, RoPE scalings
 * other than "llama3") are `model_unsupported` rather than silently ignored.
 */
import { EpicacheError } from "@epicache/shared";
import { validateConfig, type LlamaConfig, type RopeScaling } from "./config";

const ARCHITECTURES: Record<
  string,
  { architecture: LlamaConfig["architecture"]; maxPositions: number }
> = {
  LlamaForCausalLM: { architecture: "llama", maxPositions: 2048 },
  Qwen2ForCausalLM: { architecture: "qwen2", maxPositions: 32768 },
  Qwen3ForCausalLM: { architecture: "qwen3", maxPositions: 32768 },
};

type Json = Record<string, unknown>;

const invalid = (message: string) => new EpicacheError("model_invalid", `config.json: ${message}`);
const unsupported = (message: string) =>
  new EpicacheError("model_unsupported", `config.json: ${message}`);

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function num(j: Json, key: string, fallback?: number): number {
  const v = j[key] ?? fallback;
  if (v === undefined) throw invalid(`${key} is missing`);
  if (typeof v !== "number" || !Number.isFinite(v))
    throw invalid(`${key} is ${JSON.stringify(v)}, not a number`);
  return v;
}

/** RoPE scaling: null for none or "default", the Llama 3 parameters for "llama3". */
function ropeScalingOf(raw: unknown): RopeScaling | null {
  if (raw === undefined || raw === null) return null;
  if (!isObject(raw)) throw invalid(`rope_scaling is ${JSON.stringify(raw)}, not an object`);
  // transformers reads `rope_type`, and `type` in older configs.
  const type = raw.rope_type ?? raw.type ?? "default";
  if (type === "default") return null;
  if (type !== "llama3")
    throw unsupported(`RoPE scaling ${JSON.stringify(type)} is not supported (llama3 is)`);
  const s: RopeScaling = {
    type: "llama3",
    factor: num(raw, "factor"),
    lowFreqFactor: num(raw, "low_freq_factor"),
    highFreqFactor: num(raw, "high_freq_factor"),
    originalMaxPositionEmbeddings: num(raw, "original_max_position_embeddings"),
  };
  if (!(
    s.factor > 0 &&
    s.lowFreqFactor > 0 &&
    s.highFreqFactor > s.lowFreqFactor &&
    s.originalMaxPositionEmbeddings > 0
  )) {
    throw invalid(
      `llama3 rope_scaling ${JSON.stringify(raw)} needs factor > 0 and 0 < low_freq_factor < high_freq_factor`,
    );
  }
  return s;
}

/**
 * Maps a parsed config.json to the decoder config.
 *
 * @example
 * ```ts
 * configFromHf(JSON.parse(readFileSync(join(dir, "config.json"), "utf8")));
 * ```
 */
export function configFromHf(json: unknown): LlamaConfig {
  if (!isObject(json)) throw invalid("not a JSON object");
  const names = json.architectures;
  const name = Array.isArray(names) && names.length === 1 ? names[0] : undefined;
  if (typeof name !== "string")
    throw unsupported(
      `architectures is ${JSON.stringify(names)}; one of ${Object.keys(ARCHITECTURES).join(", ")} is needed`,
    );
  const arch = Object.hasOwn(ARCHITECTURES, name) ? ARCHITECTURES[name] : undefined;
  if (!arch)
    throw unsupported(
      `architecture ${name} is not supported (${Object.keys(ARCHITECTURES).join(", ")} are)`,
    );

  if (json.hidden_act !== undefined && json.hidden_act !== "silu")
    throw unsupported(`hidden_act ${JSON.stringify(json.hidden_act)} is not supported (silu is)`);
  // Qwen2 always has q/k/v biases and no o_proj bias; Llama's and Qwen3's attention_bias also adds one to o_proj.
  if (json.attention_bias === true && arch.architecture !== "qwen2")
    throw unsupported("attention_bias (biases on o_proj too) is not supported");
  if (json.mlp_bias === true) throw unsupported("mlp_bias is not supported");
  if (json.use_sliding_window === true)
    throw unsupported("sliding-window attention is not supported");

  // transformers ≥ 4.56 may nest rope_theta and the scaling in `rope_parameters`.
  const rope = isObject(json.rope_parameters) ? json.rope_parameters : undefined;
  const hiddenSize = num(json, "hidden_size");
  const numHeads = num(json, "num_attention_heads");
  const headDim =
    json.head_dim === undefined || json.head_dim === null
      ? hiddenSize / numHeads
      : num(json, "head_dim");
  return validateConfig({
    architecture: arch.architecture,
    vocabSize: num(json, "vocab_size"),
    hiddenSize,
    intermediateSize: num(json, "intermediate_size"),
    numLayers: num(json, "num_hidden_layers"),
    numHeads,
    numKvHeads:
      json.num_key_value_heads === null ? numHeads : num(json, "num_key_value_heads", numHeads),
    headDim,
    ropeTheta: rope ? num(rope, "rope_theta", 10000) : num(json, "rope_theta", 10000),
    ropeScaling: ropeScalingOf(rope ?? json.rope_scaling),
    rmsNormEps: num(json, "rms_norm_eps", 1e-6),
    contextLength: num(json, "max_position_embeddings", arch.maxPositions),
    tiedEmbeddings: json.tie_word_embeddings === true,
    qkvBias: arch.architecture === "qwen2",
    qkNorm: arch.architecture === "qwen3",
  });
}

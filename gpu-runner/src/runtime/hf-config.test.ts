import { describe, expect, it } from "vitest";
import { configFromHf } from "./hf-config";
import { ropeInvFreq } from "./rope";

/** Llama-3.2-1B-Instruct's config.json (the fields that matter). */
const LLAMA_32_1B = {
  architectures: ["LlamaForCausalLM"],
  attention_bias: false,
  head_dim: 64,
  hidden_act: "silu",
  hidden_size: 2048,
  intermediate_size: 8192,
  max_position_embeddings: 131072,
  mlp_bias: false,
  model_type: "llama",
  num_attention_heads: 32,
  num_hidden_layers: 16,
  num_key_value_heads: 8,
  rms_norm_eps: 1e-5,
  rope_scaling: {
    factor: 32,
    high_freq_factor: 4,
    low_freq_factor: 1,
    original_max_position_embeddings: 8192,
    rope_type: "llama3",
  },
  rope_theta: 500000,
  tie_word_embeddings: true,
  torch_dtype: "bfloat16",
  vocab_size: 128256,
};
/** Qwen2.5-0.5B-Instruct's. */
const QWEN25_05B = {
  architectures: ["Qwen2ForCausalLM"],
  hidden_act: "silu",
  hidden_size: 896,
  intermediate_size: 4864,
  max_position_embeddings: 32768,
  max_window_layers: 21,
  model_type: "qwen2",
  num_attention_heads: 14,
  num_hidden_layers: 24,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-6,
  rope_theta: 1000000,
  sliding_window: 32768,
  tie_word_embeddings: true,
  torch_dtype: "bfloat16",
  use_sliding_window: false,
  vocab_size: 151936,
};
/** Qwen3-0.6B's: head_dim 128 although hidden/heads is 64. */
const QWEN3_06B = {
  architectures: ["Qwen3ForCausalLM"],
  attention_bias: false,
  head_dim: 128,
  hidden_act: "silu",
  hidden_size: 1024,
  intermediate_size: 3072,
  max_position_embeddings: 40960,
  model_type: "qwen3",
  num_attention_heads: 16,
  num_hidden_layers: 28,
  num_key_value_heads: 8,
  rms_norm_eps: 1e-6,
  rope_scaling: null,
  rope_theta: 1000000,
  sliding_window: null,
  tie_word_embeddings: true,
  use_sliding_window: false,
  vocab_size: 151936,
};
/** SmolLM2-135M-Instruct's: no head_dim, no num_key_value_heads default needed. */
const SMOLLM2_135M = {
  architectures: ["LlamaForCausalLM"],
  hidden_act: "silu",
  hidden_size: 576,
  intermediate_size: 1536,
  max_position_embeddings: 8192,
  model_type: "llama",
  num_attention_heads: 9,
  num_hidden_layers: 30,
  num_key_value_heads: 3,
  rms_norm_eps: 1e-5,
  rope_scaling: null,
  rope_theta: 100000,
  tie_word_embeddings: true,
  vocab_size: 49152,
};

describe("configFromHf", () => {
  it("maps Llama 3.2 with its llama3 RoPE scaling", () => {
    expect(configFromHf(LLAMA_32_1B)).toEqual({
      architecture: "llama",
      vocabSize: 128256,
      hiddenSize: 2048,
      intermediateSize: 8192,
      numLayers: 16,
      numHeads: 32,
      numKvHeads: 8,
      headDim: 64,
      ropeTheta: 500000,
      ropeScaling: {
        type: "llama3",
        factor: 32,
        lowFreqFactor: 1,
        highFreqFactor: 4,
        originalMaxPositionEmbeddings: 8192,
      },
      rmsNormEps: 1e-5,
      contextLength: 131072,
      tiedEmbeddings: true,
      qkvBias: false,
      qkNorm: false,
    });
  });

  it("maps Qwen2.5 (q/k/v biases), Qwen3 (q/k norm, explicit head_dim) and SmolLM2", () => {
    expect(configFromHf(QWEN25_05B)).toMatchObject({
      architecture: "qwen2",
      headDim: 64,
      numKvHeads: 2,
      qkvBias: true,
      qkNorm: false,
      ropeScaling: null,
      rmsNormEps: 1e-6,
    });
    expect(configFromHf(QWEN3_06B)).toMatchObject({
      architecture: "qwen3",
      headDim: 128,
      hiddenSize: 1024,
      qkvBias: false,
      qkNorm: true,
      contextLength: 40960,
    });
    expect(configFromHf(SMOLLM2_135M)).toMatchObject({
      architecture: "llama",
      headDim: 64,
      numHeads: 9,
      numKvHeads: 3,
      tiedEmbeddings: true,
      ropeTheta: 100000,
    });
  });

  it("applies transformers' defaults", () => {
    const minimal = {
      architectures: ["LlamaForCausalLM"],
      hidden_size: 64,
      intermediate_size: 96,
      num_attention_heads: 4,
      num_hidden_layers: 2,
      vocab_size: 300,
    };
    expect(configFromHf(minimal)).toMatchObject({
      numKvHeads: 4,
      headDim: 16,
      ropeTheta: 10000,
      ropeScaling: null,
      rmsNormEps: 1e-6,
      contextLength: 2048,
      tiedEmbeddings: false,
    });
    expect(configFromHf({ ...minimal, architectures: ["Qwen2ForCausalLM"] }).contextLength).toBe(
      32768,
    );
  });

  it("reads the older `type` key and transformers' newer rope_parameters", () => {
    const { rope_type: _, ...legacy } = { ...LLAMA_32_1B.rope_scaling, type: "llama3" };
    expect(configFromHf({ ...LLAMA_32_1B, rope_scaling: legacy }).ropeScaling).toEqual(
      configFromHf(LLAMA_32_1B).ropeScaling,
    );
    const { rope_scaling, rope_theta, ...rest } = LLAMA_32_1B;
    const nested = configFromHf({ ...rest, rope_parameters: { ...rope_scaling, rope_theta } });
    expect(nested).toEqual(configFromHf(LLAMA_32_1B));
    expect(
      configFromHf({ ...QWEN3_06B, rope_scaling: { rope_type: "default" } }).ropeScaling,
    ).toBeNull();
  });

  it("refuses what the graph would compute differently, with model_unsupported", () => {
    const cases: Array<[string, object, RegExp]> = [
      [
        "unknown architecture",
        { ...LLAMA_32_1B, architectures: ["MistralForCausalLM"] },
        /MistralForCausalLM is not supported/,
      ],
      ["no architecture", { ...LLAMA_32_1B, architectures: undefined }, /architectures/],
      ["yarn", { ...QWEN3_06B, rope_scaling: { rope_type: "yarn", factor: 4 } }, /"yarn"/],
      ["o_proj bias", { ...LLAMA_32_1B, attention_bias: true }, /attention_bias/],
      ["mlp bias", { ...LLAMA_32_1B, mlp_bias: true }, /mlp_bias/],
      ["sliding window", { ...QWEN25_05B, use_sliding_window: true }, /sliding/],
      ["gelu", { ...SMOLLM2_135M, hidden_act: "gelu" }, /hidden_act/],
      ["ungrouped heads", { ...SMOLLM2_135M, num_key_value_heads: 4 }, /do not group/],
    ];
    for (const [name, json, message] of cases) {
      expect(() => configFromHf(json), name).toThrow(
        expect.objectContaining({
          code: "model_unsupported",
          message: expect.stringMatching(message),
        }),
      );
    }
  });

  it("names a missing or mistyped field with model_invalid", () => {
    const { hidden_size: _, ...noHidden } = SMOLLM2_135M;
    expect(() => configFromHf(noHidden)).toThrow(
      expect.objectContaining({
        code: "model_invalid",
        message: expect.stringMatching(/hidden_size is missing/),
      }),
    );
    expect(() => configFromHf({ ...SMOLLM2_135M, rope_theta: "big" })).toThrow(/rope_theta/);
    expect(() => configFromHf([])).toThrow(expect.objectContaining({ code: "model_invalid" }));
    const badScaling = { ...LLAMA_32_1B.rope_scaling, high_freq_factor: 0.5 };
    expect(() => configFromHf({ ...LLAMA_32_1B, rope_scaling: badScaling })).toThrow(
      expect.objectContaining({ code: "model_invalid" }),
    );
  });

  it("gives Llama 3.2's RoPE frequencies: high ones kept, low ones divided by the factor, a smooth band between", () => {
    const c = configFromHf(LLAMA_32_1B);
    const scaled = ropeInvFreq(c);
    const plain = ropeInvFreq({ ...c, ropeScaling: null });
    const wavelen = (i: number) => (2 * Math.PI) / plain[i];
    let kept = 0,
      divided = 0,
      smoothed = 0;
    for (let i = 0; i < c.headDim / 2; i++) {
      if (wavelen(i) < 8192 / 4) {
        expect(scaled[i]).toBe(plain[i]);
        kept++;
      } else if (wavelen(i) > 8192 / 1) {
        expect(scaled[i]).toBeCloseTo(plain[i] / 32, 12);
        divided++;
      } else {
        expect(scaled[i]).toBeLessThan(plain[i]);
        expect(scaled[i]).toBeGreaterThan(plain[i] / 32);
        smoothed++;
      }
    }
    expect([kept, smoothed, divided]).toEqual([15, 3, 14]);
  });
});

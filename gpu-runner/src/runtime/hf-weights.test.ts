import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parseSafetensors } from "../safetensors";
import { bufferSource, parseGguf } from "../gguf";
import {
  referenceForward,
  writeGguf,
  writeSafetensors,
  writeTinyHfCheckpoint,
  type MetaEntry,
  type SafetensorsEntry,
  type TensorEntry,
  type TinyHfCheckpoint,
} from "../testing";
import { configFromGguf } from "./config";
import { hfWeights } from "./hf-weights";
import { ggufWeights } from "./weights";

const root = mkdtempSync(join(tmpdir(), "epicache-hf-weights-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Rewrites a checkpoint's model.safetensors through `edit` (every tensor read back as F32). */
function editTensors(dir: string, edit: (entries: SafetensorsEntry[]) => SafetensorsEntry[]): void {
  const path = join(dir, "model.safetensors");
  const file = parseSafetensors(bufferSource(readFileSync(path)));
  const entries = [...file.tensors.values()].map((t) => ({
    name: t.name,
    dtype: "F32" as const,
    shape: t.shape,
    data: file.readTensor(t),
  }));
  writeFileSync(path, writeSafetensors(edit(entries)));
}

/**
 * llama.cpp's convert_hf_to_gguf.py `permute` for Llama q/k: rows viewed as [heads, 2, D/2] have
 * their two middle axes swapped (`reshape(n_head, 2, D // 2, …).swapaxes(1, 2)`).
 */
function llamaCppPermute(w: Float32Array, heads: number, cols: number): Float32Array {
  const half = w.length / cols / heads / 2;
  const out = new Float32Array(w.length);
  for (let h = 0; h < heads; h++)
    for (let j = 0; j < 2; j++)
      for (let i = 0; i < half; i++) {
        const src = ((h * 2 + j) * half + i) * cols; // [h][j][i] before the swap
        const dst = ((h * half + i) * 2 + j) * cols; // [h][i][j] after it
        out.set(w.subarray(src, src + cols), dst);
      }
  return out;
}

/** The GGUF llama.cpp's converter makes of a tiny checkpoint (F32, the GGUF names and metadata). */
function convertToGguf(ckpt: TinyHfCheckpoint): Uint8Array {
  const c = ckpt.config;
  const arch = c.architecture;
  const names: Array<[RegExp, string]> = [
    [/^model\.embed_tokens\.weight$/, "token_embd.weight"],
    [/^model\.norm\.weight$/, "output_norm.weight"],
    [/^lm_head\.weight$/, "output.weight"],
    [/input_layernorm\.weight$/, "attn_norm.weight"],
    [/post_attention_layernorm\.weight$/, "ffn_norm.weight"],
    [/self_attn\.([qkv])_proj\.(weight|bias)$/, "attn_$1.$2"],
    [/self_attn\.o_proj\.weight$/, "attn_output.weight"],
    [/self_attn\.([qk])_norm\.weight$/, "attn_$1_norm.weight"],
    [/mlp\.(gate|up|down)_proj\.weight$/, "ffn_$1.weight"],
  ];
  const tensors: TensorEntry[] = [...ckpt.tensors].map(([hfName, data]) => {
    const layer = /^model\.layers\.(\d+)\./.exec(hfName)?.[1];
    const [re, to] = names.find(([r]) => r.test(hfName)) ?? [/$^/, ""];
    const name =
      (layer === undefined ? "" : `blk.${layer}.`) +
      hfName.replace(/^model\.layers\.\d+\./, "").replace(re, to);
    const rows =
      data.length / (name.endsWith(".bias") || name.includes("norm") ? data.length : c.hiddenSize);
    const cols = data.length / rows;
    let values = data;
    if (arch === "llama" && /attn_q\.weight$/.test(name))
      values = llamaCppPermute(data, c.numHeads, cols);
    if (arch === "llama" && /attn_k\.weight$/.test(name))
      values = llamaCppPermute(data, c.numKvHeads, cols);
    // ggml order: dims[0] is the row length. o_proj and down_proj rows are not hidden-sized.
    const inner = /attn_output/.test(name)
      ? c.numHeads * c.headDim
      : /ffn_down/.test(name)
        ? c.intermediateSize
        : cols;
    return {
      name,
      dims: values.length === inner ? [inner] : [inner, values.length / inner],
      type: "F32",
      data: values,
    };
  });
  const meta: MetaEntry[] = [
    ["general.architecture", "string", arch],
    [`${arch}.block_count`, "u32", c.numLayers],
    [`${arch}.context_length`, "u32", c.contextLength],
    [`${arch}.embedding_length`, "u32", c.hiddenSize],
    [`${arch}.feed_forward_length`, "u32", c.intermediateSize],
    [`${arch}.attention.head_count`, "u32", c.numHeads],
    [`${arch}.attention.head_count_kv`, "u32", c.numKvHeads],
    [`${arch}.attention.key_length`, "u32", c.headDim],
    [`${arch}.rope.freq_base`, "f32", c.ropeTheta],
    [`${arch}.attention.layer_norm_rms_epsilon`, "f32", c.rmsNormEps],
  ];
  return writeGguf(meta, tensors);
}

describe("Hugging Face weights", () => {
  for (const arch of ["llama", "qwen2", "qwen3"] as const) {
    it(`${arch}: agree with the GGUF llama.cpp's converter makes of the same checkpoint`, () => {
      const ckpt = writeTinyHfCheckpoint(join(root, `convert-${arch}`), {
        architecture: arch,
        dtype: "F32",
        tied: arch !== "qwen2",
        headDim: arch === "qwen3" ? 32 : undefined,
      });
      const gguf = parseGguf(bufferSource(convertToGguf(ckpt)));
      const fromGguf = ggufWeights(gguf, configFromGguf(gguf), "gguf");
      const fromHf = hfWeights(ckpt.dir, ckpt.config, "hf");
      try {
        expect({ ...fromGguf.config, rmsNormEps: 0 }).toEqual({ ...fromHf.config, rmsNormEps: 0 });
        expect(fromGguf.layer(1, "wq")).toEqual(fromHf.layer(1, "wq"));
        expect(fromGguf.layer(1, "wk")).toEqual(fromHf.layer(1, "wk"));
        const tokens = [5, 77, 140, 3, 250];
        const a = referenceForward(fromGguf, tokens);
        const b = referenceForward(fromHf, tokens);
        for (let t = 0; t < tokens.length; t++) {
          for (let v = 0; v < a.logits[t].length; v++)
            expect(Math.abs(a.logits[t][v] - b.logits[t][v])).toBeLessThan(1e-5);
        }
        if (arch === "llama") {
          // The permutation is not the identity here, so the agreement above means something.
          expect(gguf.tensors.get("blk.1.attn_q.weight")).toBeDefined();
          expect(hfWeights(ckpt.dir, ckpt.config, "hf").layer(1, "wq")).not.toEqual(
            llamaCppPermute(fromHf.layer(1, "wq"), 4, 64),
          );
        }
      } finally {
        fromHf.close();
        gguf.close();
      }
    });
  }

  it("give the stored values of every tensor, q/k rows as stored (no unpermute)", () => {
    const ckpt = writeTinyHfCheckpoint(join(root, "qwen2"), {
      architecture: "qwen2",
      dtype: "BF16",
      tied: false,
      numLayers: 1,
    });
    const w = hfWeights(ckpt.dir, ckpt.config, "fp");
    try {
      const stored = (name: string) => ckpt.tensors.get(name);
      expect(w.layer(0, "wq")).toEqual(stored("model.layers.0.self_attn.q_proj.weight"));
      expect(w.layer(0, "wk")).toEqual(stored("model.layers.0.self_attn.k_proj.weight"));
      expect(w.layer(0, "bq")).toEqual(stored("model.layers.0.self_attn.q_proj.bias"));
      expect(w.layer(0, "wDown")).toEqual(stored("model.layers.0.mlp.down_proj.weight"));
      expect(w.global("output")).toEqual(stored("lm_head.weight"));
      expect(w.global("outputNorm")).toEqual(stored("model.norm.weight"));
      expect(w.storage("wq", 0)).toBe("BF16");
      expect(w.storage("output")).toBe("BF16");
      expect(w.blocks("wq", 0)).toBeNull();
      expect(w.fingerprint).toBe("fp");
    } finally {
      w.close();
    }
  });

  it("read a tied head as the embedding, in its dtype", () => {
    const ckpt = writeTinyHfCheckpoint(join(root, "tied"), { dtype: "F16", numLayers: 1 });
    const w = hfWeights(ckpt.dir, ckpt.config, "fp");
    try {
      expect(w.global("output")).toEqual(ckpt.tensors.get("model.embed_tokens.weight"));
      expect(w.storage("output")).toBe("F16");
      expect(w.storage("tokenEmbedding")).toBe("F16");
    } finally {
      w.close();
    }
  });

  it("read q/k norms of Qwen3 from F32 storage", () => {
    const ckpt = writeTinyHfCheckpoint(join(root, "qwen3"), {
      architecture: "qwen3",
      dtype: "F32",
      numLayers: 1,
      headDim: 32,
    });
    const w = hfWeights(ckpt.dir, ckpt.config, "fp");
    try {
      expect(w.layer(0, "kNorm")).toEqual(
        ckpt.tensors.get("model.layers.0.self_attn.k_norm.weight"),
      );
      expect(w.layer(0, "wq").length).toBe(4 * 32 * 64);
      expect(w.storage("qNorm", 0)).toBe("F32");
    } finally {
      w.close();
    }
  });

  it("name a missing tensor or a wrong shape, and refuse tensors the decoder would ignore", () => {
    const cases: Array<[string, (e: SafetensorsEntry[]) => SafetensorsEntry[], string, RegExp]> = [
      [
        "missing",
        (e) => e.filter((t) => t.name !== "model.layers.1.mlp.up_proj.weight"),
        "model_invalid",
        /lacks model\.layers\.1\.mlp\.up_proj\.weight/,
      ],
      [
        "shape",
        (e) => e.map((t) => (t.name === "model.norm.weight" ? { ...t, shape: [8, 8] } : t)),
        "model_invalid",
        /model\.norm\.weight has shape \[8,8\]/,
      ],
      [
        "o bias",
        (e) => [
          ...e,
          {
            name: "model.layers.0.self_attn.o_proj.bias",
            dtype: "F32",
            shape: [64],
            data: new Float32Array(64),
          },
        ],
        "model_unsupported",
        /o_proj\.bias/,
      ],
      [
        "extra layer",
        (e) => [
          ...e,
          {
            name: "model.layers.2.input_layernorm.weight",
            dtype: "F32",
            shape: [64],
            data: new Float32Array(64),
          },
        ],
        "model_unsupported",
        /layers\.2/,
      ],
    ];
    for (const [name, edit, code, message] of cases) {
      const ckpt = writeTinyHfCheckpoint(join(root, `bad-${name.replace(/\W/g, "-")}`), {
        dtype: "F32",
      });
      editTensors(ckpt.dir, edit);
      expect(() => hfWeights(ckpt.dir, ckpt.config, "fp"), name).toThrow(
        expect.objectContaining({ code, message: expect.stringMatching(message) }),
      );
    }
  });

  it("accept tensors a checkpoint may carry harmlessly (rotary inv_freq, a tied head stored anyway)", () => {
    const ckpt = writeTinyHfCheckpoint(join(root, "extras"), { dtype: "F32" });
    editTensors(ckpt.dir, (e) => [
      ...e,
      {
        name: "model.layers.0.self_attn.rotary_emb.inv_freq",
        dtype: "F32",
        shape: [8],
        data: new Float32Array(8),
      },
      { name: "lm_head.weight", dtype: "F32", shape: [288, 64], data: new Float32Array(288 * 64) },
    ]);
    const w = hfWeights(ckpt.dir, ckpt.config, "fp");
    try {
      // Tied: the head is the embedding, as transformers ties it, whatever lm_head.weight holds.
      expect(w.global("output")).toEqual(ckpt.tensors.get("model.embed_tokens.weight"));
    } finally {
      w.close();
    }
  });
});

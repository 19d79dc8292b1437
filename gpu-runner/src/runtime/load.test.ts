import { mkdtempSync, rmSync, writeFileSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  maxRelError,
  referenceForward,
  writeTinyHfCheckpoint,
  type TinyHfSpec,
  type WritableDtype,
} from "../testing";
import { hfWeights } from "./hf-weights";
import { KvCache } from "./kv-cache";
import { openChatModel } from "./load";
import type { LlamaConfig } from "./config";

const root = mkdtempSync(join(tmpdir(), "epicache-load-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const graphRoot = join(root, "graphs");

function reference(dir: string, config: LlamaConfig, tokens: number[], positions: number[]) {
  const w = hfWeights(dir, config, "ref");
  try {
    return referenceForward(w, tokens, positions);
  } finally {
    w.close();
  }
}

const tokens = [5, 77, 140, 3, 250, 9, 12, 33, 201, 64, 18, 99, 266, 287];

const FAMILIES: Array<[string, TinyHfSpec]> = [
  ["llama, tied head, GQA 4:2", { architecture: "llama" }],
  [
    "llama 3 RoPE scaling, untied head, MHA",
    { architecture: "llama", numKvHeads: 4, tied: false, ropeScaling: true },
  ],
  ["qwen2 with q/k/v biases, GQA 4:1", { architecture: "qwen2", numKvHeads: 1 }],
  ["qwen3 with q/k norm and an explicit wider head_dim", { architecture: "qwen3", headDim: 32 }],
  [
    "SmolLM2-like: llama, tied, GQA 6:2, two shards",
    {
      architecture: "llama",
      hiddenSize: 48,
      numHeads: 6,
      numKvHeads: 2,
      pre: "smollm",
      bos: false,
      shards: 2,
    },
  ],
];
const DTYPES: WritableDtype[] = ["BF16", "F16", "F32"];

describe("Hugging Face checkpoints through openChatModel", () => {
  for (const [name, spec] of FAMILIES) {
    for (const dtype of DTYPES) {
      it(`${name}, ${dtype}: logits and K/V match the float64 reference`, async () => {
        const ckpt = writeTinyHfCheckpoint(join(root, `${name.replace(/\W+/g, "-")}-${dtype}`), {
          ...spec,
          dtype,
          seed: 3,
        });
        const model = await openChatModel(ckpt.dir, { graphRoot });
        try {
          expect(model.numerics).toBe("exact");
          expect(model.config).toEqual(ckpt.config);
          // Positions far from 0 for the scaled RoPE, where its low frequencies turn by visibly different angles.
          const positions = tokens.map((_, i) => i + (spec.ropeScaling ? 700 : 0));
          const ref = reference(ckpt.dir, model.config, tokens, positions);
          const out = await model.decoder.forward(
            tokens,
            positions,
            new KvCache(model.config),
            tokens.map((_, i) => i),
          );
          const V = model.config.vocabSize;
          for (let t = 0; t < tokens.length; t++) {
            expect(
              maxRelError(out.logits.subarray(t * V, (t + 1) * V), ref.logits[t]),
            ).toBeLessThan(1e-4);
          }
          for (let l = 0; l < model.config.numLayers; l++) {
            expect(
              maxRelError(
                out.keys[l],
                ref.keys[l].flatMap((head) => head.flatMap((row) => Array.from(row))),
              ),
            ).toBeLessThan(1e-4);
            expect(
              maxRelError(
                out.values[l],
                ref.values[l].flatMap((head) => head.flatMap((row) => Array.from(row))),
              ),
            ).toBeLessThan(1e-4);
          }
          if (spec.ropeScaling) {
            // The scaling matters here: a loader that dropped it would miss the reference by far.
            const unscaled = reference(
              ckpt.dir,
              { ...model.config, ropeScaling: null },
              tokens,
              positions,
            );
            expect(
              maxRelError(
                out.logits.subarray((tokens.length - 1) * V),
                unscaled.logits[tokens.length - 1],
              ),
            ).toBeGreaterThan(1e-2);
          }
        } finally {
          await model.decoder.release();
        }
      });
    }
  }

  it("come with their tokenizer: BOS from the post-processor, the ChatML template, stop tokens", async () => {
    const ckpt = writeTinyHfCheckpoint(join(root, "tokenizer"), { architecture: "llama" });
    const model = await openChatModel(ckpt.dir, { graphRoot });
    try {
      const tok = model.tokenizer;
      const bos = tok.tokenId("<|begin_of_text|>");
      expect(tok.encodePrompt("the cat")).toEqual([bos, ...tok.encode("the cat")]);
      const chat = tok.encodeChat([{ role: "user", content: "hi" }]);
      expect(tok.decode(chat, { keepSpecial: true })).toBe(
        `<|begin_of_text|>${tok.renderChat([{ role: "user", content: "hi" }])}`,
      );
      expect(tok.stopIds).toEqual(
        new Set([tok.tokenId("<|im_end|>"), tok.tokenId("<|endoftext|>")]),
      );
    } finally {
      await model.decoder.release();
    }
  });

  it("run with exact numerics only", async () => {
    const ckpt = writeTinyHfCheckpoint(join(root, "numerics"), {});
    await expect(openChatModel(ckpt.dir, { graphRoot, numerics: "ggml" })).rejects.toMatchObject({
      code: "invalid_argument",
    });
  });

  it("are fingerprinted by config.json and the safetensors bytes", async () => {
    const fingerprint = async (dir: string) => {
      const model = await openChatModel(dir, { graphRoot });
      await model.decoder.release();
      return model.fingerprint;
    };
    const a = writeTinyHfCheckpoint(join(root, "fp-a"), { seed: 5 });
    const b = writeTinyHfCheckpoint(join(root, "fp-b"), { seed: 5 });
    const c = writeTinyHfCheckpoint(join(root, "fp-c"), { seed: 6 });
    const fa = await fingerprint(a.dir);
    expect(fa).toMatch(/^[0-9a-f]{16}$/);
    expect(await fingerprint(b.dir)).toBe(fa);
    expect(await fingerprint(c.dir)).not.toBe(fa);
    const config = JSON.parse(readFileSync(join(b.dir, "config.json"), "utf8"));
    writeFileSync(join(b.dir, "config.json"), JSON.stringify({ ...config, rms_norm_eps: 1e-6 }));
    expect(await fingerprint(b.dir)).not.toBe(fa);
  });

  it("report missing or unusable paths with codes", async () => {
    await expect(openChatModel(join(root, "nowhere"), { graphRoot })).rejects.toMatchObject({
      code: "model_not_found",
    });
    const empty = mkdtempSync(join(root, "empty-"));
    await expect(openChatModel(empty, { graphRoot })).rejects.toMatchObject({
      code: "model_not_found",
    });
    const text = join(root, "model.txt");
    writeFileSync(text, "hello");
    await expect(openChatModel(text, { graphRoot })).rejects.toMatchObject({
      code: "model_unsupported",
    });
    const badJson = writeTinyHfCheckpoint(join(root, "bad-config"), {});
    writeFileSync(join(badJson.dir, "config.json"), "{");
    await expect(openChatModel(badJson.dir, { graphRoot })).rejects.toMatchObject({
      code: "model_invalid",
    });
  });
});

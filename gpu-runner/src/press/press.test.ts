import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BUILD_METHODS } from "@epicache/shared";
import { openGguf } from "../gguf";
import { configFromGguf, KvCache, openChatModel, type ChatModel } from "../runtime";
import { ggufWeights } from "../runtime/weights";
import { blockPrefill, selectKeep } from "../prefill";
import { referenceForward, tinyGguf } from "../testing";
import {
  chatFrame,
  epicachePolicy,
  infinipotPolicy,
  INFINIPOT_PROMPT,
  keydiffPolicy,
  kvzipPolicy,
  patchedPrompt,
  policyFor,
  snapkvPolicy,
  streamingLlmPolicy,
} from ".";

const dir = mkdtempSync(join(tmpdir(), "epicache-press-"));
const path = join(dir, "tiny.gguf");
let model: ChatModel;
beforeAll(async () => {
  writeFileSync(path, tinyGguf({ architecture: "llama", numLayers: 2, seed: 11 }).bytes);
  model = await openChatModel(path, { graphRoot: join(dir, "graphs"), numerics: "exact" });
});
afterAll(async () => {
  await model?.decoder.release();
  rmSync(dir, { recursive: true, force: true });
});

const history = Array.from({ length: 40 }, (_, i) => 3 + ((i * 53 + 7) % 250));

function positionsOf(cache: KvCache, l: number, h: number): number[] {
  const layer = cache.layers[l];
  return Array.from(
    layer.positions.subarray(h * layer.capacity, h * layer.capacity + layer.lengths[h]),
  );
}

describe("scoring prompts", () => {
  it("frame the history as an open user turn and close it before the assistant header", () => {
    const frame = chatFrame(model.tokenizer);
    const rendered = model.tokenizer.decode(
      [...frame.open, ...frame.text("HISTORY"), ...frame.close("\n\nQ?")],
      { keepSpecial: true },
    );
    expect(rendered).toMatch(
      /<\|im_start\|>user\nHISTORY\n\nQ\?<\|im_end\|>\n<\|im_start\|>assistant\n$/,
    );
  });

  it("each method's prompt is what its definition says", () => {
    const frame = chatFrame(model.tokenizer);
    const block = history.slice(0, 100);
    const text = (ids: readonly number[] | null) =>
      model.tokenizer.decode(ids ?? [], { keepSpecial: true });
    expect(snapkvPolicy(4).scoringPrompt(block)).toEqual(block.slice(-4));
    expect(text(infinipotPolicy(frame).scoringPrompt(block))).toContain(INFINIPOT_PROMPT);
    const kvzip = kvzipPolicy(frame).scoringPrompt(block) as readonly number[];
    expect(kvzip.slice(-block.length)).toEqual(block);
    expect(text(kvzip)).toContain("Repeat the part of the previous context exactly.");
    const epi = text(epicachePolicy(frame, 'Caroline said, "hi"').scoringPrompt(block));
    expect(epi).toMatch(/<\|im_start\|>assistant\nCaroline said, "hi"$/);
    expect(keydiffPolicy.scoringPrompt(block)).toBeNull();
    expect(streamingLlmPolicy().scoringPrompt(block)).toBeNull();
    expect(policyFor("full", frame)).toBeNull();
    expect(BUILD_METHODS).toHaveLength(7);
  });
});

describe("scorers on hand-made patterns", () => {
  it("prompt-based methods (EpiCache, SnapKV, InfiniPot, KVzip) keep the entries their prompt attends to most", () => {
    const frame = chatFrame(model.tokenizer);
    const cache = new KvCache({ numLayers: 1, numKvHeads: 2, headDim: 2 }, 8);
    // Head 0 attends to entries 1 and 4, head 1 to entry 2; a head-wise budget of 2 per head keeps
    // the three peaks and the next strongest entry, wherever it is.
    const attention = [
      Float32Array.from([0.01, 0.5, 0.02, 0.03, 0.4]),
      Float32Array.from([0.05, 0.01, 0.9, 0.02, 0.04]),
    ];
    for (const method of ["epicache", "snapkv", "infinipot", "kvzip"] as const) {
      const policy = policyFor(method, frame, 'Ana said, "hi"');
      const scores = policy?.score({ layer: 0, attention, cache }) ?? [];
      expect(scores, method).toEqual(attention);
      expect(
        selectKeep(scores, 2, "headwise").map((k) => Array.from(k)),
        method,
      ).toEqual([
        [1, 4],
        [0, 2],
      ]);
      expect(
        selectKeep(scores, 2, "uniform").map((k) => Array.from(k)),
        method,
      ).toEqual([
        [1, 4],
        [0, 2],
      ]);
      expect(
        selectKeep(scores, 1, "headwise").map((k) => Array.from(k)),
        method,
      ).toEqual([[1], [2]]);
    }
  });

  it("KeyDiff ranks the key least like the head's mean direction first", () => {
    const cache = new KvCache({ numLayers: 1, numKvHeads: 1, headDim: 4 }, 8);
    const keys = [
      [1, 0, 0, 0],
      [0.9, 0.1, 0, 0],
      [1, 0.05, 0, 0],
      [0, 0, 1, 0],
      [2, 0, 0, 0],
    ];
    cache.append([Float32Array.from(keys.flat())], [new Float32Array(20)], [0, 1, 2, 3, 4]);
    const [scores] = keydiffPolicy.score({ layer: 0, attention: null, cache });
    const order = Array.from(scores.keys()).sort((a, b) => scores[b] - scores[a]);
    expect(order[0]).toBe(3);
    // Same direction, different norm: same score.
    expect(scores[4]).toBeCloseTo(scores[0], 6);
    expect(Array.from(selectKeep([scores], 1, "uniform")[0])).toEqual([3]);
  });

  it("StreamingLLM keeps the sinks and the most recent entries of every head", () => {
    const cache = new KvCache({ numLayers: 1, numKvHeads: 2, headDim: 2 }, 16);
    cache.append(
      [new Float32Array(2 * 10 * 2)],
      [new Float32Array(2 * 10 * 2)],
      Array.from({ length: 10 }, (_, i) => i),
    );
    const policy = streamingLlmPolicy(2);
    const keep = selectKeep(
      policy.score({ layer: 0, attention: null, cache }),
      5,
      policy.allocation ?? "headwise",
    );
    expect(keep.map((k) => Array.from(k))).toEqual([
      [0, 1, 7, 8, 9],
      [0, 1, 7, 8, 9],
    ]);
  });
});

describe("scorers in block prefill on a tiny model", () => {
  it("EpiCache keeps the entries its patched prompt attends to most (the float64 reference's top-k)", async () => {
    const frame = chatFrame(model.tokenizer);
    const rep = 'Maya said, "the lake"';
    const prompt = patchedPrompt(frame, rep);
    const budget = 10;
    const cache = new KvCache(model.config);
    await blockPrefill(model.decoder, cache, history, {
      blockSize: history.length,
      budgets: [budget, budget],
      policy: epicachePolicy(frame, rep),
    });
    const file = openGguf(path);
    const all = [...history, ...prompt];
    const ref = referenceForward(
      ggufWeights(file, configFromGguf(file), "ref"),
      all,
      all.map((_, i) => i),
      prompt.length,
    );
    file.close();
    for (let l = 0; l < 2; l++) {
      const want = selectKeep(
        (ref.scores?.[l] ?? []).map((s) => Float32Array.from(s)),
        budget,
        "headwise",
      );
      for (let h = 0; h < model.config.numKvHeads; h++)
        expect(positionsOf(cache, l, h)).toEqual(Array.from(want[h]));
    }
  });

  it("every method stays within budget + B per head, and StreamingLLM ends with sinks + the latest tokens", async () => {
    const frame = chatFrame(model.tokenizer);
    const B = 8,
      M = 12;
    for (const method of BUILD_METHODS.filter((m) => m !== "full")) {
      const cache = new KvCache(model.config);
      await blockPrefill(model.decoder, cache, history, {
        blockSize: B,
        budgets: [M, M],
        policy: policyFor(method, frame, 'Jonas said, "hello"'),
        onBlock: () => {
          for (const layer of cache.layers)
            expect(layer.lengths.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(
              (M + B) * model.config.numKvHeads,
            );
        },
      });
      for (const layer of cache.layers)
        expect(
          layer.lengths.reduce((a, b) => a + b, 0),
          method,
        ).toBe(M * model.config.numKvHeads);
    }
    const cache = new KvCache(model.config);
    await blockPrefill(model.decoder, cache, history, {
      blockSize: B,
      budgets: [M, M],
      policy: streamingLlmPolicy(4),
    });
    const expected = [
      0,
      1,
      2,
      3,
      ...Array.from({ length: M - 4 }, (_, i) => history.length - (M - 4) + i),
    ];
    for (let l = 0; l < 2; l++)
      for (let h = 0; h < model.config.numKvHeads; h++)
        expect(positionsOf(cache, l, h)).toEqual(expected);
  });
});

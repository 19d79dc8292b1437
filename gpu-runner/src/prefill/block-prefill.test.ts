import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KvCache, openChatModel, type ChatModel } from "../runtime";
import { argmax } from "../runtime/sampling";
import { attentionPolicy, maxRelError, tinyGguf } from "../testing";
import { blockPrefill, evictionFreeTokens, selectKeep } from "./block-prefill";

const dir = mkdtempSync(join(tmpdir(), "epicache-prefill-"));
let model: ChatModel;
beforeAll(async () => {
  const path = join(dir, "tiny.gguf");
  writeFileSync(path, tinyGguf({ architecture: "llama", numLayers: 3, seed: 3 }).bytes);
  model = await openChatModel(path, { graphRoot: join(dir, "graphs"), numerics: "exact" });
});
afterAll(async () => {
  await model?.decoder.release();
  rmSync(dir, { recursive: true, force: true });
});

// A deterministic pseudo-random history over the tiny vocabulary's byte tokens.
const history = Array.from({ length: 150 }, (_, i) => 3 + ((i * 37 + (i >> 3) * 11) % 250));

const policy = attentionPolicy();

async function oneShot(
  tokens: readonly number[],
): Promise<{ logits: Float32Array; cache: KvCache }> {
  const cache = new KvCache(model.config);
  const positions = tokens.map((_, i) => i);
  const out = await model.decoder.forward(tokens, positions, cache, [tokens.length - 1]);
  cache.append(out.keys, out.values, positions);
  return { logits: out.logits, cache };
}

async function greedy(cache: KvCache, first: Float32Array, n: number): Promise<number[]> {
  const ids: number[] = [];
  let logits = first;
  for (let i = 0; i < n; i++) {
    const id = argmax(logits);
    ids.push(id);
    const pos = [cache.nextPosition];
    const out = await model.decoder.forward([id], pos, cache, [0]);
    cache.append(out.keys, out.values, pos);
    logits = out.logits;
  }
  return ids;
}

describe("block-wise prefill", () => {
  it("without eviction gives one-shot prefill's next-token logits for blocks of 1, 7, 64 and the whole length", async () => {
    const whole = await oneShot(history);
    for (const B of [1, 7, 64, history.length, history.length + 10]) {
      const cache = new KvCache(model.config);
      const { logits, blocks } = await blockPrefill(model.decoder, cache, history, {
        blockSize: B,
        budgets: null,
        policy: null,
      });
      expect(blocks).toBe(Math.ceil(history.length / B));
      expect(maxRelError(logits, whole.logits), `B = ${B}`).toBeLessThan(1e-4);
      expect(cache.nextPosition).toBe(history.length);
      expect(cache.entries).toBe(history.length * model.config.numKvHeads * model.config.numLayers);
    }
  });

  for (const allocation of ["headwise", "uniform"] as const) {
    it(`with a budget (${allocation}) stays within budget + B per head after every block and keeps original positions`, async () => {
      const B = 16,
        budget = 24;
      const { numLayers: L, numKvHeads: KV } = model.config;
      const cache = new KvCache(model.config);
      let checked = 0;
      await blockPrefill(model.decoder, cache, history, {
        blockSize: B,
        budgets: Array(L).fill(budget),
        policy,
        allocation,
        onBlock: ({ block }) => {
          const fed = Math.min(block * B, history.length);
          for (const layer of cache.layers) {
            const sum = layer.lengths.reduce((a, b) => a + b, 0);
            expect(sum).toBeLessThanOrEqual(budget * KV + B * KV);
            if (allocation === "uniform")
              for (const n of layer.lengths) expect(n).toBeLessThanOrEqual(budget);
            else expect(sum).toBe(Math.min(budget * KV, fed * KV));
            for (let h = 0; h < KV; h++) {
              const pos = Array.from(
                layer.positions.subarray(h * layer.capacity, h * layer.capacity + layer.lengths[h]),
              );
              // Kept entries keep their original positions, in order, from the history fed so far.
              for (let i = 1; i < pos.length; i++) expect(pos[i]).toBeGreaterThan(pos[i - 1]);
              for (const p of pos) expect(p >= 0 && p < fed).toBe(true);
            }
          }
          checked++;
        },
      });
      expect(checked).toBe(Math.ceil(history.length / B));
      expect(cache.nextPosition).toBe(history.length);
      // The first block's keys were computed without eviction: every kept one equals one-shot's.
      const whole = await oneShot(history);
      const D = model.config.headDim;
      for (let l = 0; l < L; l++) {
        const layer = cache.layers[l],
          ref = whole.cache.layers[l];
        for (let h = 0; h < KV; h++) {
          for (let i = 0; i < layer.lengths[h]; i++) {
            const p = layer.positions[h * layer.capacity + i];
            if (p >= B) continue;
            const got = layer.keys.subarray(
              (h * layer.capacity + i) * D,
              (h * layer.capacity + i + 1) * D,
            );
            const want = ref.keys.subarray(
              (h * ref.capacity + p) * D,
              (h * ref.capacity + p + 1) * D,
            );
            expect(maxRelError(got, want)).toBeLessThan(1e-5);
          }
        }
      }
      // Head-wise allocation gives heads different lengths here (the test would be weak otherwise).
      if (allocation === "headwise")
        expect(cache.layers.some((layer) => new Set(layer.lengths).size > 1)).toBe(true);
    });
  }

  it("with a budget at least the history's length, decoding afterwards equals full decoding", async () => {
    const full = await oneShot(history);
    const cache = new KvCache(model.config);
    const { logits } = await blockPrefill(model.decoder, cache, history, {
      blockSize: 32,
      budgets: Array(model.config.numLayers).fill(history.length),
      policy,
    });
    expect(maxRelError(logits, full.logits)).toBeLessThan(1e-4);
    expect(cache.entries).toBe(full.cache.entries);
    expect(await greedy(cache, logits, 8)).toEqual(await greedy(full.cache, full.logits, 8));
  });

  it("runs the scoring prompt only after blocks that take some layer over its budget", async () => {
    const prompted: number[] = []; // the cache's entries each time a prompt was asked for
    let cache = new KvCache(model.config);
    const counting = {
      ...policy,
      scoringPrompt: (block: readonly number[]) => {
        prompted.push(cache.entries);
        return policy.scoringPrompt(block);
      },
    };
    const L = model.config.numLayers;
    // Blocks of 32 under a budget of 40 per head: the first block fits, every later one does not.
    const first = await blockPrefill(model.decoder, cache, history, {
      blockSize: 32,
      budgets: Array(L).fill(40),
      policy: counting,
    });
    expect(prompted).toHaveLength(Math.ceil(history.length / 32) - 1);
    expect(first.scored).toBe(prompted.length);
    // One layer with a smaller budget is enough: then every block is scored, the first one too.
    prompted.length = 0;
    cache = new KvCache(model.config);
    const second = await blockPrefill(model.decoder, cache, history, {
      blockSize: 32,
      budgets: [...Array(L - 1).fill(40), 16],
      policy: counting,
    });
    expect(prompted).toHaveLength(Math.ceil(history.length / 32));
    expect(second.scored).toBe(prompted.length);
    // What evictionFreeTokens promises: the blocks before the first prompt, and none under a smaller budget.
    expect(evictionFreeTokens(history.length, 32, Array(L).fill(40))).toBe(32);
    expect(evictionFreeTokens(history.length, 32, [...Array(L - 1).fill(40), 16])).toBe(0);
    expect(evictionFreeTokens(history.length, 32, Array(L).fill(100))).toBe(96);
    expect(evictionFreeTokens(70, 32, Array(L).fill(1000))).toBe(64); // whole blocks only
  });

  it("rejects a bad block size, budgets of the wrong length and budgets without a policy", async () => {
    const c = new KvCache(model.config);
    await expect(
      blockPrefill(model.decoder, c, history, { blockSize: 0, budgets: null, policy: null }),
    ).rejects.toMatchObject({ code: "invalid_argument" });
    await expect(
      blockPrefill(model.decoder, c, history, { blockSize: 8, budgets: [4], policy }),
    ).rejects.toMatchObject({ code: "invalid_argument" });
    await expect(
      blockPrefill(model.decoder, c, history, {
        blockSize: 8,
        budgets: Array(model.config.numLayers).fill(4),
        policy: null,
      }),
    ).rejects.toMatchObject({ code: "invalid_argument" });
  });
});

describe("selectKeep", () => {
  const s = [Float32Array.from([0.9, 0.1, 0.5]), Float32Array.from([0.8, 0.7, 0.2, 0.6])];
  it("head-wise: the top budget·heads pairs of the layer, ascending per head", () => {
    expect(selectKeep(s, 2, "headwise").map((a) => Array.from(a))).toEqual([[0], [0, 1, 3]]);
  });
  it("uniform: the top budget of each head", () => {
    expect(selectKeep(s, 2, "uniform").map((a) => Array.from(a))).toEqual([
      [0, 2],
      [0, 1],
    ]);
  });
  it("keeps everything within the budget, and breaks ties toward earlier entries", () => {
    expect(selectKeep(s, 4, "headwise").map((a) => a.length)).toEqual([3, 4]);
    expect(Array.from(selectKeep([Float32Array.from([1, 1, 1])], 2, "uniform")[0])).toEqual([0, 1]);
  });
  it("is the top of all pairs sorted by score, then head, then entry, with NaN lowest", () => {
    // The rule written as a sort of every (score, head, entry) pair.
    const bySort = (scores: Float32Array[], keep: number) => {
      const pairs = scores.flatMap((s, h) =>
        Array.from(s, (v, i) => [Number.isNaN(v) ? -Infinity : v, h, i] as const),
      );
      pairs.sort((a, b) => b[0] - a[0] || a[1] - b[1] || a[2] - b[2]);
      const chosen = scores.map(() => [] as number[]);
      for (const [, h, i] of pairs.slice(0, keep)) chosen[h].push(i);
      return chosen.map((c) => c.sort((a, b) => a - b));
    };
    const value = fc.oneof(
      fc.integer({ min: -3, max: 3 }), // many ties
      fc.constantFrom(-0, Number.NaN, Infinity, -Infinity),
      fc.float({ noNaN: true }),
    );
    fc.assert(
      fc.property(
        fc.array(fc.array(value, { maxLength: 12 }), { minLength: 1, maxLength: 4 }),
        fc.integer({ min: 1, max: 8 }),
        (rows, budget) => {
          const scores = rows.map((r) => Float32Array.from(r));
          const got = (a: "headwise" | "uniform") =>
            selectKeep(scores, budget, a).map((x) => Array.from(x));
          expect(got("headwise")).toEqual(bySort(scores, budget * scores.length));
          expect(got("uniform")).toEqual(scores.map((s) => bySort([s], budget)[0]));
        },
      ),
    );
  });
});

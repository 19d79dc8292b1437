import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openGguf } from "../gguf";
import { configFromGguf, KvCache, openChatModel, repositioner, type ChatModel } from "../runtime";
import { argmax } from "../runtime/sampling";
import { ggufWeights } from "../runtime/weights";
import { streamingLlmPolicy } from "../press";
import { attentionPolicy, referenceForward, tinyGguf } from "../testing";
import { blockPrefill } from "./block-prefill";
import { compactCache, compactTargets } from "./positions";

const dir = mkdtempSync(join(tmpdir(), "epicache-positions-"));
const path = join(dir, "tiny.gguf");
let model: ChatModel;
beforeAll(async () => {
  writeFileSync(path, tinyGguf({ architecture: "llama", numLayers: 3, seed: 5 }).bytes);
  model = await openChatModel(path, { graphRoot: join(dir, "graphs"), numerics: "exact" });
});
afterAll(async () => {
  await model?.decoder.release();
  rmSync(dir, { recursive: true, force: true });
});

const history = (n: number) =>
  Array.from({ length: n }, (_, i) => 3 + ((i * 37 + (i >> 3) * 11) % 250));

const policy = attentionPolicy();

function reference(tokens: readonly number[], positions: readonly number[]) {
  const file = openGguf(path);
  try {
    return referenceForward(ggufWeights(file, configFromGguf(file), "ref"), tokens, positions);
  } finally {
    file.close();
  }
}

async function prefilled(
  tokens: readonly number[],
  positions: readonly number[],
): Promise<KvCache> {
  const cache = new KvCache(model.config);
  const out = await model.decoder.forward(tokens, positions, cache, [tokens.length - 1]);
  cache.append(out.keys, out.values, positions);
  return cache;
}

/** Largest |a − b| between the cache's keys of head h in layer l and the reference's. */
function keyError(cache: KvCache, l: number, h: number, expected: Float64Array[]): number {
  const D = cache.headDim;
  const layer = cache.layers[l];
  let err = 0;
  expected.forEach((k, i) => {
    for (let d = 0; d < D; d++)
      err = Math.max(err, Math.abs(layer.keys[(h * layer.capacity + i) * D + d] - k[d]));
  });
  return err;
}

describe("compactTargets", () => {
  it("right-aligns entries before the end, and squeezes them in order when they do not fit", () => {
    expect(Array.from(compactTargets(3, 10))).toEqual([7, 8, 9]);
    expect(Array.from(compactTargets(4, 4))).toEqual([0, 1, 2, 3]);
    const squeezed = Array.from(compactTargets(10, 4));
    expect(squeezed[0]).toBe(0);
    expect(Math.max(...squeezed)).toBe(3);
    expect(squeezed.every((p, i) => i === 0 || p >= squeezed[i - 1])).toBe(true);
  });
});

describe("moving cached keys", () => {
  const tokens = history(24);

  it("gives every layer the keys computed at the new positions when every entry moves by the same distance", async () => {
    const cache = await prefilled(
      tokens,
      tokens.map((_, i) => i),
    );
    const mover = repositioner(model.config);
    const shift = 1000;
    for (let l = 0; l < cache.layers.length; l++) {
      for (let h = 0; h < cache.kvHeads; h++)
        mover.move(
          cache,
          l,
          h,
          tokens.map((_, i) => i + shift),
        );
    }
    const ref = reference(
      tokens,
      tokens.map((_, i) => i + shift),
    );
    for (let l = 0; l < cache.layers.length; l++) {
      for (let h = 0; h < cache.kvHeads; h++)
        expect(keyError(cache, l, h, ref.keys[l][h])).toBeLessThan(1e-4);
      expect(Array.from(cache.layers[l].positions.subarray(0, tokens.length))).toEqual(
        tokens.map((_, i) => i + shift),
      );
    }
  });

  it("gives the first layer the keys computed at arbitrary new positions (deeper keys depend on relative positions)", async () => {
    const cache = await prefilled(
      tokens,
      tokens.map((_, i) => 3 * i + 7),
    );
    const to = tokens.map((_, i) => ((i * 5) % 17) + 2 * i);
    const mover = repositioner(model.config);
    for (let h = 0; h < cache.kvHeads; h++) mover.move(cache, 0, h, to);
    const ref = reference(tokens, to);
    for (let h = 0; h < cache.kvHeads; h++)
      expect(keyError(cache, 0, h, ref.keys[0][h])).toBeLessThan(1e-4);
  });

  it("leaves values alone and a cache moved there and back unchanged", async () => {
    const cache = await prefilled(
      tokens,
      tokens.map((_, i) => i),
    );
    const before = cache.clone();
    const mover = repositioner(model.config);
    for (let h = 0; h < cache.kvHeads; h++)
      mover.move(
        cache,
        1,
        h,
        tokens.map((_, i) => 5000 - i),
      );
    // Every head holds every token here, so the packed layer is all of its entries.
    expect(cache.packed(1).values).toEqual(before.packed(1).values);
    for (let h = 0; h < cache.kvHeads; h++)
      mover.move(
        cache,
        1,
        h,
        tokens.map((_, i) => i),
      );
    const was = before.packed(1).keys;
    const err = cache.packed(1).keys.reduce((m, v, i) => Math.max(m, Math.abs(v - was[i])), 0);
    expect(err).toBeLessThan(1e-4);
  });
});

describe("block-wise prefill with compact positions", () => {
  it("keeps every position under the window after every block of a history ten times the window, in flat memory", async () => {
    const window = 128;
    const B = 16;
    const tokens = history(10 * window);
    const cache = new KvCache(model.config);
    const seen: Array<{ max: number; next: number; bytes: number }> = [];
    const result = await blockPrefill(model.decoder, cache, tokens, {
      blockSize: B,
      budgets: Array(model.config.numLayers).fill(8),
      policy,
      compact: { window, mover: repositioner(model.config), room: 32 },
      onBlock: () => {
        let max = 0;
        for (const layer of cache.layers) {
          for (let h = 0; h < cache.kvHeads; h++) {
            for (let i = 0; i < layer.lengths[h]; i++)
              max = Math.max(max, layer.positions[h * layer.capacity + i]);
          }
        }
        seen.push({ max, next: cache.nextPosition, bytes: cache.bytes });
      },
    });
    expect(seen).toHaveLength(tokens.length / B);
    // Cached entries, the next block, its scoring prompt and the question's room all fit the window.
    for (const s of seen) {
      expect(s.max).toBeLessThan(s.next);
      expect(s.next + B + 3 + 32).toBeLessThanOrEqual(window);
    }
    expect(result.maxPosition).toBeLessThan(window);
    expect(new Set(seen.map((s) => s.bytes)).size).toBe(1);
  });

  it("gives the same cache and answer as original positions when nothing is evicted", async () => {
    const tokens = history(150);
    const run = async (compact: boolean) => {
      const cache = new KvCache(model.config);
      const { logits } = await blockPrefill(model.decoder, cache, tokens, {
        blockSize: 32,
        budgets: Array(model.config.numLayers).fill(200),
        policy,
        ...(compact ? { compact: { window: 2048, mover: repositioner(model.config) } } : {}),
      });
      const answer: number[] = [];
      let next = logits;
      for (let i = 0; i < 8; i++) {
        answer.push(argmax(next));
        const pos = [cache.nextPosition];
        const out = await model.decoder.forward([answer[i]], pos, cache, [0]);
        cache.append(out.keys, out.values, pos);
        next = out.logits;
      }
      return { cache, answer };
    };
    const original = await run(false);
    const compact = await run(true);
    expect(compact.answer).toEqual(original.answer);
    expect(compact.cache.nextPosition).toBe(original.cache.nextPosition);
    compact.cache.layers.forEach((layer, l) => {
      expect(layer.lengths).toEqual(original.cache.layers[l].lengths);
      expect(layer.positions).toEqual(original.cache.layers[l].positions);
      expect(layer.keys).toEqual(original.cache.layers[l].keys);
    });
  });

  it("keeps the original spacing of kept entries while the window has room, evicting or not", async () => {
    const tokens = history(150);
    const run = async (compact: boolean) => {
      const cache = new KvCache(model.config);
      await blockPrefill(model.decoder, cache, tokens, {
        blockSize: 16,
        budgets: Array(model.config.numLayers).fill(8),
        policy,
        ...(compact ? { compact: { window: 2048, mover: repositioner(model.config) } } : {}),
      });
      return cache;
    };
    const [original, compact] = [await run(false), await run(true)];
    expect(compact.nextPosition).toBe(tokens.length);
    compact.layers.forEach((layer, l) => {
      expect(layer.positions).toEqual(original.layers[l].positions);
      expect(layer.keys).toEqual(original.layers[l].keys);
    });
  });

  it("gives StreamingLLM positions within the cache after every block, as its paper does", async () => {
    const tokens = history(150);
    const cache = new KvCache(model.config);
    const sinks = 4,
      budget = 12;
    await blockPrefill(model.decoder, cache, tokens, {
      blockSize: 16,
      budgets: Array(model.config.numLayers).fill(budget),
      policy: streamingLlmPolicy(sinks),
      compact: { window: 2048, mover: repositioner(model.config) },
      onBlock: ({ block }) => {
        if (block < 2) return;
        // Sinks and recent tokens sit at 0 … budget − 1, the next token at budget.
        expect(cache.nextPosition).toBe(budget);
        for (const layer of cache.layers)
          expect(Array.from(layer.positions.subarray(0, budget))).toEqual(
            Array.from({ length: budget }, (_, i) => i),
          );
      },
    });
    // What they were computed at: the sinks and the latest tokens.
    expect(Array.from(cache.layers[0].origins.subarray(0, budget))).toEqual([
      0,
      1,
      2,
      3,
      ...Array.from({ length: budget - sinks }, (_, i) => 150 - (budget - sinks) + i),
    ]);
  });

  it("compacts a cache whose heads hold different numbers of entries so every head ends just before the next token", async () => {
    const tokens = history(40);
    const cache = await prefilled(
      tokens,
      tokens.map((_, i) => i * 10),
    );
    cache.keep(
      0,
      [
        Int32Array.from([0, 5, 9]),
        Int32Array.from([1, 2, 3, 4, 30, 39]),
        Int32Array.from([39]),
      ].slice(0, cache.kvHeads),
    );
    const next = compactCache(cache, repositioner(model.config), 1000);
    expect(next).toBe(tokens.length); // the longest head (the other layers keep all 40)
    const layer = cache.layers[0];
    for (let h = 0; h < cache.kvHeads; h++) {
      const n = layer.lengths[h];
      expect(
        Array.from(layer.positions.subarray(h * layer.capacity, h * layer.capacity + n)),
      ).toEqual(Array.from({ length: n }, (_, i) => next - n + i));
    }
  });
});

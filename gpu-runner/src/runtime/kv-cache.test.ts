import { describe, expect, it } from "vitest";
import { KvCache } from "./kv-cache";

describe("KvCache.shrinkToFit", () => {
  it("cuts every layer to its longest head, keeping each head's entries, positions and what comes next", () => {
    const config = { numLayers: 2, numKvHeads: 2, headDim: 4 };
    const cache = new KvCache(config, 256);
    const rows = 5;
    const kv = (seed: number) =>
      Array.from({ length: config.numLayers }, (_, l) =>
        Float32Array.from(
          { length: config.numKvHeads * rows * config.headDim },
          (_, i) => seed + 100 * l + i,
        ),
      );
    cache.append(kv(0), kv(1000), [0, 1, 2, 3, 4]);
    // Layer 0 keeps entries 1 and 3 of head 0 and all of head 1; layer 1 keeps one entry per head.
    cache.keep(0, [Int32Array.from([1, 3]), Int32Array.from([0, 1, 2, 3, 4])]);
    cache.keep(1, [Int32Array.from([4]), Int32Array.from([0])]);
    // Each head's entries: keys, values and positions, read through the cache's own slots.
    const heads = () =>
      [0, 1].map((l) =>
        [0, 1].map((h) =>
          Array.from({ length: cache.layers[l].lengths[h] }, (_, i) => {
            const at = cache.slot(l, h, i);
            const D = config.headDim;
            return [
              cache.layers[l].positions[at],
              ...cache.layers[l].keys.subarray(at * D, (at + 1) * D),
              ...cache.layers[l].values.subarray(at * D, (at + 1) * D),
            ];
          }),
        ),
      );
    const before = heads();

    cache.shrinkToFit();
    // The longest head, in an even number of entries (at least 2): a decoding step halves them.
    expect(cache.layers.map((layer) => layer.capacity)).toEqual([6, 2]);
    expect(heads()).toEqual(before);
    // A layer that fits goes to the graph as it is, not as a packed copy; ggml numerics take exactly
    // the longest head, so theirs is a copy of 5 and 1 entries.
    for (const l of [0, 1]) expect(cache.packed(l, true).keys).toBe(cache.layers[l].keys);
    expect([0, 1].map((l) => cache.packed(l).length)).toEqual([5, 1]);
    // Appending afterwards grows it again.
    cache.append(kv(5000), kv(6000), [5]);
    expect(cache.layers.map((layer) => Array.from(layer.lengths))).toEqual([
      [3, 6],
      [2, 2],
    ]);
    expect(cache.layers[1].keys[cache.slot(1, 0, 1) * config.headDim]).toBe(5000 + 100);
  });
});

describe("KvCache.clone and fit", () => {
  const config = { numLayers: 2, numKvHeads: 2, headDim: 3 };
  const kv = (seed: number, rows: number) =>
    Array.from({ length: config.numLayers }, (_, l) =>
      Float32Array.from(
        { length: config.numKvHeads * rows * config.headDim },
        (_, i) => seed + 100 * l + i,
      ),
    );
  // Every head's valid entries: key, value, position and origin (what lies past a head's length is not an entry).
  const entries = (cache: KvCache) =>
    cache.layers.map((layer, l) =>
      Array.from(layer.lengths, (n, h) =>
        Array.from({ length: n }, (_, i) => {
          const at = cache.slot(l, h, i);
          const D = config.headDim;
          return [
            ...layer.keys.subarray(at * D, (at + 1) * D),
            ...layer.values.subarray(at * D, (at + 1) * D),
            layer.positions[at],
            layer.origins[at],
          ];
        }),
      ),
    );

  it("a clone copies the entries with exactly the room asked for, and is independent", () => {
    const cache = new KvCache(config, 500);
    cache.append(kv(0, 4), kv(1000, 4), [0, 1, 2, 3]);
    cache.keep(1, [Int32Array.from([0, 2]), Int32Array.from([3])]);
    const copy = cache.clone(10);
    expect(copy.layers.map((l) => l.capacity)).toEqual([14, 12]);
    expect(entries(copy)).toEqual(entries(cache));
    expect(copy.nextPosition).toBe(cache.nextPosition);
    expect(copy.tokensRead).toBe(cache.tokensRead);
    expect(cache.clone().layers.map((l) => l.capacity)).toEqual([4, 2]);
    copy.append(kv(5000, 1), kv(6000, 1), [4]);
    expect(cache.layers[0].lengths[0]).toBe(4);
    expect(copy.layers[0].lengths[0]).toBe(5);
  });

  it("fit leaves exactly the room asked for, whatever the buffers held before: grows a short layer, shrinks a roomy one", () => {
    const cache = new KvCache(config, 1000);
    cache.append(kv(0, 4), kv(1000, 4), [0, 1, 2, 3]);
    const before = entries(cache);
    cache.fit(20);
    expect(cache.layers.map((l) => l.capacity)).toEqual([24, 24]);
    expect(entries(cache)).toEqual(before);
    const buffer = cache.layers[0].keys;
    cache.fit(19); // 23 entries: an even 24, as it is
    expect(cache.layers[0].keys).toBe(buffer);
    cache.fit(10);
    expect(cache.layers.map((l) => l.capacity)).toEqual([14, 14]);
    cache.fit(100);
    expect(cache.layers.map((l) => l.capacity)).toEqual([104, 104]);
    expect(entries(cache)).toEqual(before);
    expect(cache.full).toBe(false);
    cache.fit(0);
    expect(cache.full).toBe(true);
  });

  it("keep moves the kept entries to the front in order, runs and single ones alike, and refuses indices out of order", () => {
    const cache = new KvCache(config, 8);
    cache.append(kv(0, 8), kv(1000, 8), [10, 11, 12, 13, 14, 15, 16, 17]);
    const before = entries(cache);
    const keep = [Int32Array.from([1, 2, 3, 5, 7]), Int32Array.from([0, 1, 6])];
    cache.keep(0, keep);
    expect(entries(cache)[0]).toEqual(
      keep.map((idx, h) => Array.from(idx, (j) => before[0][h][j])),
    );
    expect(entries(cache)[1]).toEqual(before[1]);
    expect(() => cache.keep(1, [Int32Array.from([2, 1]), Int32Array.from([0])])).toThrow(/order/);
    expect(() => cache.keep(1, [Int32Array.from([8]), Int32Array.from([0])])).toThrow(/range/);
    // A bad index in the second head: the first head's entries have not moved either.
    expect(() => cache.keep(1, [Int32Array.from([5]), Int32Array.from([1, 1])])).toThrow(/order/);
    expect(entries(cache)[1]).toEqual(before[1]);
  });

  it("rewind takes off what was appended since a mark, across a resize, and refuses after an eviction", () => {
    const cache = new KvCache(config, 6);
    cache.append(kv(0, 4), kv(1000, 4), [0, 1, 2, 3]);
    cache.keep(1, [Int32Array.from([0, 2]), Int32Array.from([3])]); // heads of different lengths
    const before = entries(cache);
    const mark = cache.mark();
    cache.append(kv(5000, 3), kv(6000, 3), [4, 5, 6]); // past the capacity: the layers grow
    expect(cache.layers[0].capacity).toBeGreaterThan(6);
    cache.rewind(mark);
    expect(entries(cache)).toEqual(before);
    expect([cache.nextPosition, cache.tokensRead]).toEqual([4, 4]);
    cache.append(kv(7000, 1), kv(8000, 1), [4]); // what follows goes where the rewound entries were
    expect(cache.layers[1].lengths).toEqual(Int32Array.from([3, 2]));
    expect(cache.layers[1].origins[cache.slot(1, 1, 1)]).toBe(4);
    cache.rewind(mark);
    const again = cache.mark();
    cache.append(kv(9000, 2), kv(9500, 2), [4, 5]);
    cache.keep(0, [Int32Array.from([0]), Int32Array.from([1])]);
    expect(() => cache.rewind(again)).toThrow(/other than by appending/);
  });
});

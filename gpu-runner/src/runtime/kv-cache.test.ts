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
    expect(cache.layers.map((layer) => layer.capacity)).toEqual([5, 1]);
    expect(heads()).toEqual(before);
    // A layer that fits goes to the graph as it is, not as a packed copy.
    for (const l of [0, 1]) expect(cache.packed(l).keys).toBe(cache.layers[l].keys);
    // Appending afterwards grows it again.
    cache.append(kv(5000), kv(6000), [5]);
    expect(cache.layers.map((layer) => Array.from(layer.lengths))).toEqual([
      [3, 6],
      [2, 2],
    ]);
    expect(cache.layers[1].keys[cache.slot(1, 0, 1) * config.headDim]).toBe(5000 + 100);
  });
});

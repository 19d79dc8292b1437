import { describe, expect, it } from "vitest";
import { KvCache } from "../model/kv-cache";
import { decodeCache, encodeCache } from "./episode-dir";

const shape = { layers: 2, kvHeads: 3, headDim: 4 };

function sampleCache(): KvCache {
  const cache = new KvCache({ numLayers: 2, numKvHeads: 3, headDim: 4 }, 8);
  const T = 6;
  const keys = [0, 1].map((l) => Float32Array.from({ length: 3 * T * 4 }, (_, i) => l * 1000 + i + 0.5));
  const values = [0, 1].map((l) => Float32Array.from({ length: 3 * T * 4 }, (_, i) => -(l * 1000 + i)));
  cache.append(keys, values, [10, 11, 12, 13, 14, 15]);
  // Heads of different lengths, as head-wise eviction leaves them.
  cache.keep(0, [Int32Array.from([0, 2, 5]), Int32Array.from([1]), Int32Array.from([])]);
  cache.keep(1, [Int32Array.from([0, 1, 2, 3, 4, 5]), Int32Array.from([3, 4]), Int32Array.from([5])]);
  cache.nextPosition = 40;
  return cache;
}

function snapshot(c: KvCache) {
  return c.layers.map((layer) =>
    Array.from(layer.lengths, (n, h) => ({
      positions: Array.from(layer.positions.subarray(h * layer.capacity, h * layer.capacity + n)),
      keys: Array.from(layer.keys.subarray(h * layer.capacity * 4, (h * layer.capacity + n) * 4)),
      values: Array.from(layer.values.subarray(h * layer.capacity * 4, (h * layer.capacity + n) * 4)),
    })),
  );
}

describe("episode cache files", () => {
  it("round-trip heads of different lengths, their positions and the next position", () => {
    const cache = sampleCache();
    const back = decodeCache(encodeCache(cache), shape);
    expect(snapshot(back)).toEqual(snapshot(cache));
    expect(back.nextPosition).toBe(40);
    expect(back.entries).toBe(cache.entries);
    // From a Node Buffer (what readFileSync returns) too.
    expect(snapshot(decodeCache(Buffer.from(encodeCache(cache)), shape))).toEqual(snapshot(cache));
  });

  it("rejects every truncation, trailing bytes, a bad magic, version or shape with store_invalid", () => {
    const bytes = encodeCache(sampleCache());
    for (let n = 0; n < bytes.length; n += 7) expect(() => decodeCache(bytes.subarray(0, n), shape)).toThrow(expect.objectContaining({ code: "store_invalid" }));
    const longer = new Uint8Array(bytes.length + 1);
    longer.set(bytes);
    expect(() => decodeCache(longer, shape)).toThrow(/trailing/);
    const bad = (offset: number, value: number) => {
      const b = bytes.slice();
      new DataView(b.buffer).setUint32(offset, value, true);
      return () => decodeCache(b, shape);
    };
    expect(bad(0, 0)).toThrow(/magic/);
    expect(bad(4, 2)).toThrow(/version 2/);
    expect(bad(12, 2)).toThrow(/does not fit/);
    expect(bad(24, 0xffffffff)).toThrow(expect.objectContaining({ code: "store_invalid" }));
  });
});

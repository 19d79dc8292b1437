/**
 * Small episode-store versions whose caches carry a mark (every key `mark`, every value `−mark`), so
 * that a reader can tell which version a cache came from and that no cache mixes two: what the
 * store's version, publish and fault tests write and read back.
 */
import type { EpisodeStore } from "../episodes/episode-store";
import { MANIFEST_FORMAT, type EpisodeManifest } from "../episodes/manifest";
import { KvCache } from "../runtime/kv-cache";

export const MARKED_SHAPE = { numLayers: 2, numKvHeads: 2, headDim: 4 };
export const MARKED_FINGERPRINT = "0123456789abcdef";

/** A cache of MARKED_SHAPE marked `mark`, its heads `lengths` long (unequal by default). */
export function markedCache(mark: number, lengths = [3, 1, 2, 2]): KvCache {
  const { numKvHeads: KV, headDim: D } = MARKED_SHAPE;
  const cache = new KvCache(MARKED_SHAPE, 4);
  cache.layers.forEach((layer, l) => {
    for (let h = 0; h < KV; h++) {
      const n = lengths[l * KV + h];
      layer.lengths[h] = n;
      for (let i = 0; i < n; i++) {
        const at = h * layer.capacity + i;
        layer.positions[at] = 10 * i + h;
        layer.keys.fill(mark, at * D, (at + 1) * D);
        layer.values.fill(-mark, at * D, (at + 1) * D);
      }
    }
  });
  cache.nextPosition = 40;
  return cache;
}

/** The mark of a loaded cache, checking that the whole cache carries it. */
export function markOf(cache: KvCache): number {
  const mark = cache.layers[0].keys[0];
  const D = cache.headDim;
  for (const layer of cache.layers) {
    for (let h = 0; h < cache.kvHeads; h++) {
      for (let i = 0; i < layer.lengths[h] * D; i++) {
        const at = h * layer.capacity * D + i;
        if (layer.keys[at] !== mark || layer.values[at] !== -mark)
          throw new Error(`a cache mixes marks ${mark} and ${layer.keys[at]}`);
      }
    }
  }
  return mark;
}

/**
 * Writes a version of `episodes` caches marked `mark`, `mark + 1`, … and returns its manifest, not yet
 * published.
 */
export async function writeMarkedVersion(
  store: EpisodeStore,
  at: { tenant: string; conversation: string; version: string },
  mark: number,
  createdAt: string,
  episodes = 2,
): Promise<EpisodeManifest> {
  const entries: EpisodeManifest["episodes"] = [];
  for (let e = 0; e < episodes; e++) {
    const cache = markedCache(mark + e);
    const stored = await store.writeEpisode(at, e, cache, {
      fingerprint: MARKED_FINGERPRINT,
      budget: 4,
      dtype: "f32",
    });
    entries.push({
      id: e,
      ...stored,
      centroid: [1, 0],
      windows: [e],
      representatives: [e],
      entries: cache.entries,
    });
  }
  return {
    format: MANIFEST_FORMAT,
    ...at,
    model: {
      id: "m.gguf",
      fingerprint: MARKED_FINGERPRINT,
      numerics: "exact",
      layers: MARKED_SHAPE.numLayers,
      kvHeads: MARKED_SHAPE.numKvHeads,
      headDim: MARKED_SHAPE.headDim,
    },
    embedder: { modelId: "e", dimension: 2 },
    method: "epicache",
    budget: 4,
    block: 8,
    layerBudgets: [4, 4],
    contextTokens: 40,
    dtype: "f32",
    routing: { rule: "centroid" },
    episodes: entries,
    createdAt,
  };
}

/**
 * The runner's loaded episode caches: an LRU (lru-cache) bounded in bytes over
 * {@link EpisodeStore.loadEpisode}, keyed by tenant, conversation, version and episode (versions never
 * change, so an entry never goes stale). Concurrent questions for one episode share one load; a failed
 * load is not kept; a cache larger than the whole budget is handed out but not kept. The caches handed
 * out are shared: clone one before appending to it.
 */
import { LRUCache } from "lru-cache";
import type { KvCache } from "../runtime/kv-cache";
import type { EpisodeStore } from "./episode-store";
import type { EpisodeManifest } from "./manifest";

/** Lookups since start, and what is held now (for the runner's metrics). */
export interface LoadedStats {
  /** Served from memory, or from a load another request started. */
  hits: number;
  /** Loaded from the store. */
  misses: number;
  /** Evicted to stay within the byte budget. */
  evictions: number;
  /** Bytes held now (a load in flight counts 1), and entries (loads in flight included). */
  bytes: number;
  entries: number;
}

export class LoadedEpisodes {
  private readonly lru: LRUCache<string, KvCache, { manifest: EpisodeManifest; episode: number }>;
  private readonly counts = { hits: 0, misses: 0, evictions: 0 };

  constructor(
    readonly store: Pick<EpisodeStore, "loadEpisode">,
    maxBytes: number,
  ) {
    if (!(maxBytes >= 0)) throw new RangeError(`maxBytes must be ≥ 0, not ${maxBytes}`);
    this.lru = new LRUCache({
      // lru-cache takes a positive integer: a budget of 0 keeps nothing all the same (a cache is over 1 byte).
      maxSize: Math.max(1, Math.floor(maxBytes)),
      sizeCalculation: (cache) => Math.max(1, cache.bytes),
      fetchMethod: (_key, _stale, { context }) =>
        this.store.loadEpisode(context.manifest, context.episode),
      // A load evicted while in flight still answers the requests waiting for it (and is not kept).
      ignoreFetchAbort: true,
      dispose: (_cache, _key, reason) => {
        if (reason === "evict") this.counts.evictions++;
      },
    });
  }

  async get(manifest: EpisodeManifest, episode: number): Promise<KvCache> {
    const key = `${manifest.tenant}/${manifest.conversation}/${manifest.version}/${episode}`;
    const status: LRUCache.Status<string, KvCache> = {};
    try {
      return await this.lru.forceFetch(key, { context: { manifest, episode }, status });
    } finally {
      if (status.fetch === "hit" || status.fetch === "inflight") this.counts.hits++;
      else this.counts.misses++;
    }
  }

  get stats(): LoadedStats {
    return { ...this.counts, bytes: this.lru.calculatedSize, entries: this.lru.size };
  }
}

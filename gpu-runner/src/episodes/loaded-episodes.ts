/**
 * The runner's loaded episode caches: an LRU bounded in bytes over {@link EpisodeStore.loadEpisode},
 * keyed by tenant, conversation, version and episode (versions never change, so an entry never goes
 * stale). Concurrent questions for one episode share one load. The caches handed out are shared:
 * clone one before appending to it.
 */
import type { KvCache } from "../runtime/kv-cache";
import { LruCache, type LruStats } from "../store";
import type { EpisodeStore } from "./episode-store";
import type { EpisodeManifest } from "./manifest";

export class LoadedEpisodes {
  private readonly lru: LruCache<KvCache>;

  constructor(
    readonly store: EpisodeStore,
    maxBytes: number,
  ) {
    this.lru = new LruCache<KvCache>(maxBytes, (c) => c.bytes);
  }

  get(manifest: EpisodeManifest, episode: number): Promise<KvCache> {
    const key = `${manifest.tenant}/${manifest.conversation}/${manifest.version}/${episode}`;
    return this.lru.get(key, () => this.store.loadEpisode(manifest, episode));
  }

  get stats(): LruStats {
    return this.lru.stats;
  }
}

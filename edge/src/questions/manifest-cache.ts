/**
 * Active manifests cached per isolate: a question reads the conversation's active version from D1
 * anyway, so a cached manifest is used only when its version is that one, and a new version replaces
 * it at once. Each holds what routing reads: the rule, the centroids (L2-normalised), for `window`,
 * `vote` and `lexical` the int8 window vectors (one byte per dimension, about 384 KB per 1,000
 * windows), and for `lexical` the windows' terms (about 60 per window, as strings). The cache is an
 * LRU (lru-cache) bounded in entries and in bytes, so that long conversations cannot fill the isolate.
 * Loads are not shared between concurrent requests: a promise settled by another request's I/O is
 * not to be awaited in a Worker.
 */
import { LRUCache } from "lru-cache";
import { EpicacheError, l2Normalize, type RoutingData, type RoutingRule } from "@epicache/shared";
import { getManifest, type Manifest } from "../db/versions";

/** A manifest ready for routing. */
export interface RoutingManifest {
  version: string;
  episodeIds: number[];
  /** The version's rule (shared routeQuestion); `centroid` for versions stored before routing rules. */
  rule: RoutingRule;
  /** What `rule` reads; `windowEpisodes` are positions in `episodeIds`. */
  data: RoutingData;
  embedder: Manifest["embedder"];
}

const MAX_ENTRIES = 1000;
/** Bytes of centroids, window vectors and terms held at most (the isolate has 128 MB). */
export const MAX_CACHED_BYTES = 32 << 20;
// An entry over the byte bound alone is not kept (the question still gets it); the others stay.
const cache = new LRUCache<string, { manifest: RoutingManifest; bytes: number }>({
  max: MAX_ENTRIES,
  maxSize: MAX_CACHED_BYTES,
  sizeCalculation: (entry) => entry.bytes,
});

/**
 * The routing manifest of `version` of the tenant's conversation, from the isolate's cache when it
 * holds that version, else from D1 (then cached; the least recently used entries go past 1,000
 * entries or {@link MAX_CACHED_BYTES}).
 */
export async function activeManifest(
  db: D1Database,
  tenantId: string,
  conversationId: string,
  version: string,
): Promise<RoutingManifest> {
  const key = `${tenantId}/${conversationId}`;
  const cached = cache.get(key);
  if (cached?.manifest.version === version) return cached.manifest;
  const manifest = await getManifest(db, tenantId, conversationId, version);
  if (manifest === null)
    throw new EpicacheError(
      "no_active_version",
      `conversation ${conversationId}'s active version ${version} has no stored manifest`,
    );
  const centroids = manifest.episodes.map((e) => l2Normalize(e.centroid));
  const entry: RoutingManifest = {
    version,
    episodeIds: manifest.episodes.map((e) => e.id),
    rule: manifest.routing,
    data:
      manifest.windows === undefined
        ? { centroids }
        : {
            centroids,
            windows: manifest.windows.vectors,
            windowEpisodes: manifest.windows.episodes,
            windowTerms: manifest.windows.terms,
          },
    embedder: manifest.embedder,
  };
  // Per window: its bytes, and roughly its view object and episode number; per term, its characters
  // (one byte each: ASCII) and roughly a string's header and the list's slot.
  const terms = manifest.windows?.terms ?? [];
  const termBytes = terms.reduce(
    (n, t) => n + 16 + t.reduce((m, term) => m + term.length + 24, 0),
    0,
  );
  const bytes =
    centroids.length * manifest.embedder.dimension * 4 +
    (manifest.windows?.vectors.length ?? 0) * (manifest.embedder.dimension + 64) +
    termBytes;
  // lru-cache takes sizes of at least 1.
  cache.set(key, { manifest: entry, bytes: Math.max(1, Math.ceil(bytes)) });
  return entry;
}

/** Empties the cache (tests). */
export function clearManifestCache(): void {
  cache.clear();
}

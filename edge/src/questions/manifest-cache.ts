/**
 * Active manifests cached per isolate: a question reads the conversation's active version from D1
 * anyway, so a cached manifest is used only when its version is that one, and a new version replaces
 * it at once. Centroids are kept L2-normalised, ready for the cosine.
 */
import { EpicacheError, l2Normalize } from "@epicache/shared";
import { getManifest, type Manifest } from "../db/versions";

/** A manifest ready for routing. */
export interface RoutingManifest {
  version: string;
  episodeIds: number[];
  centroids: Float32Array[];
  embedder: Manifest["embedder"];
}

const MAX_ENTRIES = 1000;
const cache = new Map<string, RoutingManifest>();

/**
 * The routing manifest of `version` of the tenant's conversation, from the isolate's cache when it
 * holds that version, else from D1 (then cached; the oldest entry goes past 1,000).
 */
export async function activeManifest(db: D1Database, tenantId: string, conversationId: string, version: string): Promise<RoutingManifest> {
  const key = `${tenantId}/${conversationId}`;
  const cached = cache.get(key);
  if (cached?.version === version) return cached;
  const manifest = await getManifest(db, tenantId, conversationId, version);
  if (manifest === null) throw new EpicacheError("no_active_version", `conversation ${conversationId}'s active version ${version} has no stored manifest`);
  const entry: RoutingManifest = {
    version,
    episodeIds: manifest.episodes.map((e) => e.id),
    centroids: manifest.episodes.map((e) => l2Normalize(e.centroid)),
    embedder: manifest.embedder,
  };
  cache.delete(key);
  cache.set(key, entry);
  if (cache.size > MAX_ENTRIES) cache.delete(cache.keys().next().value as string);
  return entry;
}

/** Empties the cache (tests). */
export function clearManifestCache(): void {
  cache.clear();
}

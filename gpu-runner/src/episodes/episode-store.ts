/**
 * Versions of a conversation's episode caches in an object store (docs/design.md §3).
 *
 * Publishing a build: every `episode-{e}.kvc` is written first, then the version's `manifest.json`
 * (create-only: a version is written once), then the conversation's `active.json` pointer moves to the
 * new version with a compare-and-swap on its ETag. So a manifest never names a missing blob, and the
 * pointer never names a missing manifest. A crash before the last step leaves the previous version
 * active. A publish never moves the pointer back to a version older than the active one.
 *
 * Reading: resolve the pointer once, then read that version's manifest and blobs, which never change;
 * a reader sees one version whole, never a mix, while others publish.
 *
 * Collecting: versions that are not active go after a grace period (measured from the pointer's last
 * move and from the version's newest object), manifest first, so that readers that resolved the
 * pointer just before it moved can finish and a build in progress is never touched.
 */
import { createHash } from "node:crypto";
import {
  activeKey,
  conversationPrefix,
  decodeKvc,
  encodeKvc,
  EpicacheError,
  episodeKey,
  isValidId,
  manifestKey,
  validateId,
  versionOfKey,
  type KvcCache,
  type KvcDtype,
} from "@epicache/shared";
import { KvCache } from "../runtime/kv-cache";
import type { ObjectStore } from "../store";
import { parseManifest, type EpisodeManifest } from "./manifest";

export const ACTIVE_FORMAT = "epicache-active/1";

/** The active pointer (`active.json`). */
export interface ActivePointer {
  format: typeof ACTIVE_FORMAT;
  version: string;
  /** The active version's manifest `createdAt`: publishes never move the pointer to an older one. */
  createdAt: string;
  /** When the pointer last moved. */
  publishedAt: string;
}

export interface PublishResult {
  /** The version active after the publish. */
  active: string;
  /** False when a newer version was already active (the published one stays, inactive, until collected). */
  moved: boolean;
}

export interface StoredEpisode {
  key: string;
  bytes: number;
  sha256: string;
}

export interface GcResult {
  deleted: string[];
  kept: string[];
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class EpisodeStore {
  constructor(readonly objects: ObjectStore) {}

  get location(): string {
    return this.objects.location;
  }

  /** Writes one episode's cache as `.kvc` (streamed: the encoder's chunks go up as they are made). */
  async writeEpisode(
    at: { tenant: string; conversation: string; version: string },
    episode: number,
    cache: KvCache,
    meta: { fingerprint: string; budget: number | null; dtype: KvcDtype },
  ): Promise<StoredEpisode> {
    const key = episodeKey(at.tenant, at.conversation, at.version, episode);
    // A published version never changes: its readers check its blobs against its manifest.
    if ((await this.objects.head(manifestKey(at.tenant, at.conversation, at.version))) !== null) {
      throw new EpicacheError(
        "store_conflict",
        `version ${at.version} of ${at.tenant}/${at.conversation} is already published; a new build needs a new version`,
      );
    }
    const hash = createHash("sha256");
    let bytes = 0;
    const chunks = encodeKvc(toKvc(cache, meta.fingerprint, meta.budget), meta.dtype, {
      chunkBytes: 4 << 20,
    });
    function* counted(): Generator<Uint8Array> {
      for (const c of chunks) {
        hash.update(c);
        bytes += c.length;
        yield c;
      }
    }
    await this.objects.put(key, counted(), { contentType: "application/octet-stream" });
    return { key, bytes, sha256: hash.digest("hex") };
  }

  /**
   * Writes the manifest (create-only), then moves the active pointer to its version unless a newer
   * version is active. Publishing a manifest again is a retry, not an error: a publish whose manifest
   * landed but whose pointer did not move (a failure, or an answer lost) must be able to finish.
   * `store_conflict` if the version was already published with another manifest.
   */
  async publish(given: EpisodeManifest): Promise<PublishResult> {
    const { tenant, conversation, version } = given;
    const manifest = await this.objects
      .put(
        manifestKey(tenant, conversation, version),
        encoder.encode(`${JSON.stringify(given, null, 1)}\n`),
        {
          ifNoneMatch: "*",
          contentType: "application/json",
        },
      )
      .then(
        () => given,
        async (e: EpicacheError) => {
          if (e.code !== "store_conflict") throw e;
          // The same manifest but for its time (a build run again): the stored one stands, blobs and all.
          const stored = await this.readManifest(tenant, conversation, version);
          if (
            JSON.stringify({ ...stored, createdAt: "" }) !==
            JSON.stringify({ ...given, createdAt: "" })
          ) {
            throw new EpicacheError(
              "store_conflict",
              `version ${version} of ${tenant}/${conversation} is already published with another manifest`,
              { cause: e },
            );
          }
          return stored;
        },
      );
    const key = activeKey(tenant, conversation);
    for (let attempt = 0; ; attempt++) {
      const current = await this.readPointer(tenant, conversation);
      if (
        current !== null &&
        (current.pointer.createdAt > manifest.createdAt || current.pointer.version === version)
      ) {
        return { active: current.pointer.version, moved: current.pointer.version === version };
      }
      const pointer: ActivePointer = {
        format: ACTIVE_FORMAT,
        version,
        createdAt: manifest.createdAt,
        publishedAt: new Date().toISOString(),
      };
      try {
        await this.objects.put(key, encoder.encode(`${JSON.stringify(pointer)}\n`), {
          ...(current === null ? { ifNoneMatch: "*" as const } : { ifMatch: current.etag }),
          contentType: "application/json",
        });
        return { active: version, moved: true };
      } catch (e) {
        // Another publisher moved it between our read and write: read it again.
        if ((e as EpicacheError).code !== "store_conflict" || attempt >= 20) throw e;
      }
    }
  }

  /** The active pointer and its ETag, or null when nothing was published. */
  async readPointer(
    tenant: string,
    conversation: string,
  ): Promise<{ pointer: ActivePointer; etag: string } | null> {
    const key = activeKey(tenant, conversation);
    let got;
    try {
      got = await this.objects.get(key);
    } catch (e) {
      if ((e as EpicacheError).code === "store_not_found") return null;
      throw e;
    }
    let pointer: ActivePointer;
    try {
      pointer = JSON.parse(decoder.decode(got.bytes)) as ActivePointer;
    } catch (e) {
      throw new EpicacheError("store_invalid", `${this.location}${key}: ${(e as Error).message}`);
    }
    if (pointer?.format !== ACTIVE_FORMAT || !isValidId(pointer.version))
      throw new EpicacheError("store_invalid", `${this.location}${key} is not an active pointer`);
    return { pointer, etag: got.info.etag };
  }

  /** The active version's manifest; `store_not_found` when nothing was published. */
  async resolve(tenant: string, conversation: string): Promise<EpisodeManifest> {
    const current = await this.readPointer(tenant, conversation);
    if (current === null) {
      throw new EpicacheError(
        "store_not_found",
        `${this.location} holds no published episode caches for ${tenant}/${conversation}; build them with \`npx epicache build\``,
      );
    }
    return this.readManifest(tenant, conversation, current.pointer.version);
  }

  async readManifest(
    tenant: string,
    conversation: string,
    version: string,
  ): Promise<EpisodeManifest> {
    const key = manifestKey(tenant, conversation, version);
    const { bytes } = await this.objects.get(key);
    const manifest = parseManifest(decoder.decode(bytes), `${this.location}${key}`);
    if (
      manifest.tenant !== tenant ||
      manifest.conversation !== conversation ||
      manifest.version !== version
    ) {
      throw new EpicacheError(
        "store_invalid",
        `${this.location}${key} describes ${manifest.tenant}/${manifest.conversation}/${manifest.version}`,
      );
    }
    return manifest;
  }

  /** The conversations of a tenant that have objects in the store. */
  async conversations(tenant: string): Promise<string[]> {
    const prefix = `tenants/${validateId("tenant", tenant)}/conversations/`;
    const found = new Set<string>();
    for await (const o of this.objects.list(prefix)) {
      const id = o.key.slice(prefix.length).split("/")[0];
      if (isValidId(id)) found.add(id);
    }
    return [...found];
  }

  /**
   * Loads one episode's cache, streamed straight into the decoder's layer buffers (each layer exactly
   * as long as its longest head), checking the manifest's size and SHA-256 and the file's CRCs.
   */
  async loadEpisode(manifest: EpisodeManifest, episode: number): Promise<KvCache> {
    const entry = manifest.episodes[episode];
    if (entry === undefined)
      throw new EpicacheError(
        "invalid_argument",
        `episode ${episode} is not in 0 … ${manifest.episodes.length - 1}`,
      );
    const source = `${this.location}${entry.key}`;
    const { info, body } = await this.objects.getStream(entry.key);
    if (info.size !== entry.bytes) {
      await body[Symbol.asyncIterator]().return?.();
      throw new EpicacheError(
        "store_invalid",
        `${source} has ${info.size} bytes; its manifest says ${entry.bytes}`,
      );
    }
    const { layers: L, kvHeads: H, headDim: D } = manifest.model;
    const cache = new KvCache({ numLayers: L, numKvHeads: H, headDim: D }, 1);
    const hash = createHash("sha256");
    async function* hashed(): AsyncGenerator<Uint8Array> {
      for await (const c of body) {
        hash.update(c);
        yield c;
      }
    }
    const { cache: kvc } = await decodeKvc(hashed(), {
      source,
      byteLength: info.size,
      into: (header, lengths) => {
        if (header.layers !== L || header.kvHeads !== H || header.headDim !== D) {
          throw new EpicacheError(
            "store_invalid",
            `${source}: shape ${header.layers}×${header.kvHeads}×${header.headDim} does not fit the model (${L}×${H}×${D})`,
          );
        }
        if (header.fingerprint !== manifest.model.fingerprint)
          throw new EpicacheError(
            "store_invalid",
            `${source} was built with model ${header.fingerprint}, its manifest names ${manifest.model.fingerprint}`,
          );
        return intoLayers(cache, lengths);
      },
    });
    const digest = hash.digest("hex");
    if (digest !== entry.sha256)
      throw new EpicacheError(
        "store_invalid",
        `${source}: SHA-256 ${digest} is not the manifest's ${entry.sha256}`,
      );
    cache.nextPosition = kvc.nextPosition;
    // What a .kvc does not keep: each entry's index in the history (compaction may have moved its
    // position) and how much was read. Positions stand in for both.
    cache.tokensRead = kvc.nextPosition;
    for (const layer of cache.layers) layer.origins.set(layer.positions);
    return cache;
  }

  /**
   * Deletes versions that are not active, once the pointer last moved and the version's newest object
   * were both written more than `graceMs` ago. Manifests go before their blobs.
   */
  async gc(
    tenant: string,
    conversation: string,
    options: { graceMs: number; now?: number },
  ): Promise<GcResult> {
    const now = options.now ?? Date.now();
    const prefix = conversationPrefix(tenant, conversation);
    const current = await this.readPointer(tenant, conversation);
    const versions = new Map<string, { keys: string[]; newest: number }>();
    for await (const o of this.objects.list(`${prefix}versions/`)) {
      const version = versionOfKey(prefix, o.key);
      if (version === null) continue;
      const v = versions.get(version) ?? { keys: [], newest: 0 };
      v.keys.push(o.key);
      v.newest = Math.max(v.newest, o.lastModified.getTime());
      versions.set(version, v);
    }
    const result: GcResult = { deleted: [], kept: [] };
    const pointerAge = current === null ? Infinity : now - Date.parse(current.pointer.publishedAt);
    for (const [version, v] of [...versions].sort(([a], [b]) => (a < b ? -1 : 1))) {
      if (
        version === current?.pointer.version ||
        pointerAge < options.graceMs ||
        now - v.newest < options.graceMs
      ) {
        result.kept.push(version);
        continue;
      }
      const manifest = manifestKey(tenant, conversation, version);
      if (v.keys.includes(manifest)) await this.objects.delete([manifest]);
      await this.objects.delete(v.keys.filter((k) => k !== manifest));
      result.deleted.push(version);
    }
    return result;
  }
}

/** The cache's heads as `.kvc` arrays: views, no copy. */
export function toKvc(cache: KvCache, fingerprint: string, budget: number | null): KvcCache {
  const H = cache.kvHeads,
    D = cache.headDim;
  const lengths = new Uint32Array(cache.layers.length * H);
  const positions: Int32Array[] = [],
    keys: Float32Array[] = [],
    values: Float32Array[] = [];
  cache.layers.forEach((layer, l) => {
    for (let h = 0; h < H; h++) {
      const n = layer.lengths[h],
        base = h * layer.capacity;
      lengths[l * H + h] = n;
      positions.push(layer.positions.subarray(base, base + n));
      keys.push(layer.keys.subarray(base * D, (base + n) * D));
      values.push(layer.values.subarray(base * D, (base + n) * D));
    }
  });
  return {
    fingerprint,
    layers: cache.layers.length,
    kvHeads: H,
    headDim: D,
    budget,
    nextPosition: cache.nextPosition,
    lengths,
    positions,
    keys,
    values,
  };
}

/** Sizes `cache`'s layers for these lengths and returns views of its buffers for the decoder to fill. */
function intoLayers(
  cache: KvCache,
  lengths: Uint32Array,
): { positions: Int32Array[]; keys: Float32Array[]; values: Float32Array[] } {
  const H = cache.kvHeads,
    D = cache.headDim;
  const out = {
    positions: [] as Int32Array[],
    keys: [] as Float32Array[],
    values: [] as Float32Array[],
  };
  cache.layers.forEach((_, l) => {
    let longest = 1;
    for (let h = 0; h < H; h++) longest = Math.max(longest, lengths[l * H + h]);
    cache.ensureCapacity(l, longest);
    const layer = cache.layers[l];
    for (let h = 0; h < H; h++) {
      const n = lengths[l * H + h],
        base = h * layer.capacity;
      layer.lengths[h] = n;
      out.positions.push(layer.positions.subarray(base, base + n));
      out.keys.push(layer.keys.subarray(base * D, (base + n) * D));
      out.values.push(layer.values.subarray(base * D, (base + n) * D));
    }
  });
  return out;
}

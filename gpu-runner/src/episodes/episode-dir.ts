/**
 * Episode caches in a directory (the layout `build --out` writes and `ask --store` reads; the storage
 * issue replaces it with .kvc blobs in an object store):
 *
 *   DIR/manifest.json      EpisodeManifest (below), written last
 *   DIR/episode-<e>.kv     one cache, little-endian:
 *
 *   offset  size          field
 *   0       4             magic "EPKV"
 *   4       4   u32       format version (1)
 *   8       4   u32       layers L
 *   12      4   u32       KV heads H
 *   16      4   u32       head dim D
 *   20      4   u32       next position (the history length the cache continues from)
 *   24      …             per layer ℓ: lengths i32[H], then per head h: positions i32[len],
 *                         keys f32[len·D], values f32[len·D]
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { EpicacheError } from "@epicache/shared";
import { KvCache } from "../model/kv-cache";

const MAGIC = 0x564b5045; // "EPKV" little-endian
const VERSION = 1;
export const MANIFEST = "manifest.json";

export interface EpisodeManifest {
  format: "epicache-episodes/1";
  conversation: string;
  /** The model the caches were built with, and the numerics (asking uses the same). */
  model: { path: string; fingerprint: string; numerics: string; layers: number; kvHeads: number; headDim: number };
  embedder: { modelId: string; dimension: number };
  method: string;
  budget: number | null;
  block: number;
  /** Per layer, entries per KV head (M_ℓ); null for Full KV. */
  layerBudgets: number[] | null;
  contextTokens: number;
  episodes: Array<{
    id: number;
    file: string;
    /** L2-normalised centroid of the episode's windows. */
    centroid: number[];
    /** Window indices (segmentation order) in the episode. */
    windows: number[];
    /** The representative windows (chronological). */
    representatives: number[];
    entries: number;
  }>;
  createdAt: string;
}

export function episodeFile(e: number): string {
  return `episode-${e}.kv`;
}

export function encodeCache(cache: KvCache): Uint8Array {
  const L = cache.layers.length, H = cache.kvHeads, D = cache.headDim;
  let bytes = 24;
  for (const layer of cache.layers) {
    bytes += 4 * H;
    for (const n of layer.lengths) bytes += 4 * n + 8 * n * D;
  }
  const out = new Uint8Array(bytes);
  const dv = new DataView(out.buffer);
  [MAGIC, VERSION, L, H, D, cache.nextPosition].forEach((v, i) => dv.setUint32(i * 4, v, true));
  let o = 24;
  for (const layer of cache.layers) {
    for (let h = 0; h < H; h++, o += 4) dv.setInt32(o, layer.lengths[h], true);
    for (let h = 0; h < H; h++) {
      const n = layer.lengths[h];
      const base = h * layer.capacity;
      for (let i = 0; i < n; i++, o += 4) dv.setInt32(o, layer.positions[base + i], true);
      for (const src of [layer.keys, layer.values]) {
        const part = src.subarray(base * D, (base + n) * D);
        out.set(new Uint8Array(part.buffer, part.byteOffset, part.byteLength), o);
        o += part.byteLength;
      }
    }
  }
  return out;
}

export function decodeCache(input: Uint8Array, expect: { layers: number; kvHeads: number; headDim: number }, source = "episode cache"): KvCache {
  // A plain view: a Node Buffer's slice() would share memory instead of copying.
  const bytes = new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
  const bad = (why: string): never => {
    throw new EpicacheError("store_invalid", `${source}: ${why}`);
  };
  if (bytes.byteLength < 24) bad("shorter than its header");
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const [magic, version, L, H, D, next] = [0, 1, 2, 3, 4, 5].map((i) => dv.getUint32(i * 4, true));
  if (magic !== MAGIC) bad("not an episode cache (bad magic)");
  if (version !== VERSION) bad(`format version ${version} is not supported (${VERSION} is)`);
  if (L !== expect.layers || H !== expect.kvHeads || D !== expect.headDim) bad(`shape ${L}×${H}×${D} does not fit the model (${expect.layers}×${expect.kvHeads}×${expect.headDim})`);
  // First pass: lengths, to size the cache.
  let o = 24;
  const lengths: Int32Array[] = [];
  for (let l = 0; l < L; l++) {
    if (o + 4 * H > bytes.byteLength) bad("truncated");
    const ls = new Int32Array(H);
    for (let h = 0; h < H; h++) ls[h] = dv.getInt32(o + 4 * h, true);
    o += 4 * H;
    for (const n of ls) {
      if (n < 0) bad(`negative length in layer ${l}`);
      o += 4 * n + 8 * n * D;
    }
    if (o > bytes.byteLength) bad("truncated");
    lengths.push(ls);
  }
  if (o !== bytes.byteLength) bad("has trailing bytes");
  const cache = new KvCache({ numLayers: L, numKvHeads: H, headDim: D }, 1);
  o = 24;
  for (let l = 0; l < L; l++) {
    // Each layer exactly as long as its longest head: what decoding reads without copying.
    cache.ensureCapacity(l, Math.max(1, ...lengths[l]));
    const layer = cache.layers[l];
    const cap = layer.capacity;
    layer.lengths.set(lengths[l]);
    o += 4 * H;
    for (let h = 0; h < H; h++) {
      const n = lengths[l][h];
      for (let i = 0; i < n; i++, o += 4) layer.positions[h * cap + i] = dv.getInt32(o, true);
      for (const dst of [layer.keys, layer.values]) {
        const f = new Float32Array(bytes.slice(o, o + 4 * n * D).buffer);
        dst.set(f, h * cap * D);
        o += 4 * n * D;
      }
    }
  }
  cache.nextPosition = next;
  return cache;
}

/** Writes a file atomically (temporary name, then rename). */
export function writeAtomic(path: string, data: Uint8Array | string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}

export function readManifest(dir: string): EpisodeManifest {
  const path = join(dir, MANIFEST);
  if (!existsSync(path)) throw new EpicacheError("store_not_found", `${dir} holds no episode caches (no ${MANIFEST}); build them with \`npx epicache build --out ${dir}\``);
  let m: unknown;
  try {
    m = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new EpicacheError("store_invalid", `${path}: ${(e as Error).message}`);
  }
  const manifest = m as EpisodeManifest;
  if (manifest?.format !== "epicache-episodes/1" || !Array.isArray(manifest.episodes)) throw new EpicacheError("store_invalid", `${path} is not an episode manifest`);
  return manifest;
}

/**
 * Caches and byte helpers for the `.kvc` tests and benchmarks (not exported from `@epicache/shared`).
 */
import { crc32 } from "./crc32";
import type { KvcCache } from "./kvc-format";

/** A seeded PRNG (mulberry32): uniform in [0, 1). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Shape and contents of {@link randomCache}. */
export interface RandomCacheOptions {
  layers: number;
  kvHeads: number;
  headDim: number;
  /** Entries per (ℓ, h): a fixed list, or a maximum (random lengths 0 … max, head 0 of layer 0 always max). */
  lengths: number[] | { max: number };
  seed: number;
  budget?: number | null;
}

/**
 * A cache with key-like values: roughly normal, per-channel magnitudes that differ by up to 16×
 * (real K caches have outlier channels), distinct positions below `nextPosition`.
 */
export function randomCache(o: RandomCacheOptions): KvcCache {
  const random = rng(o.seed);
  const count = o.layers * o.kvHeads;
  const D = o.headDim;
  const lengths = new Uint32Array(count);
  for (let i = 0; i < count; i++) {
    lengths[i] = Array.isArray(o.lengths)
      ? o.lengths[i]
      : i === 0
        ? o.lengths.max
        : Math.floor(random() * (o.lengths.max + 1));
  }
  const channelScale = Array.from({ length: D }, () => 0.25 * 2 ** Math.floor(random() * 5));
  const gaussian = () => (random() + random() + random() + random() - 2) * 1.7;
  const tensor = (n: number) => {
    const x = new Float32Array(n * D);
    for (let j = 0; j < x.length; j++) x[j] = gaussian() * channelScale[j % D];
    return x;
  };
  let maxLength = 0;
  for (const n of lengths) maxLength = Math.max(maxLength, n);
  const positions = Array.from(lengths, (n) => {
    const p = new Int32Array(n);
    for (let k = 0; k < n; k++) p[k] = 3 * k + Math.floor(random() * 3);
    return p;
  });
  return {
    fingerprint: Array.from({ length: 16 }, () => Math.floor(random() * 16).toString(16)).join(""),
    layers: o.layers,
    kvHeads: o.kvHeads,
    headDim: D,
    budget: o.budget === undefined ? 64 : o.budget,
    nextPosition: 3 * maxLength + 7,
    lengths,
    positions,
    keys: Array.from(lengths, tensor),
    values: Array.from(lengths, tensor),
  };
}

/** The bytes of `chunks`, concatenated. */
export function concat(chunks: Iterable<Uint8Array>): Uint8Array {
  const list = [...chunks];
  const out = new Uint8Array(list.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of list) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** `bytes` cut into pieces of the given sizes (cycled; 0 gives an empty piece), each a copy, as an async stream. */
export async function* chunked(
  bytes: Uint8Array,
  sizes: readonly number[],
): AsyncGenerator<Uint8Array> {
  const cycle = sizes.some((n) => n > 0) ? sizes : [bytes.length];
  for (let at = 0, i = 0; at < bytes.length; i++) {
    const n = cycle[i % cycle.length];
    yield bytes.slice(at, at + n);
    at += n;
  }
}

/**
 * `bytes` with every CRC recomputed where the frames (as their own byte lengths say) allow: the header
 * CRC, then each section's. A mutated file resealed this way gets past the checksums, so the semantic
 * checks behind them are exercised.
 */
export function reseal(input: Uint8Array): Uint8Array {
  const bytes = input.slice();
  const dv = new DataView(bytes.buffer);
  if (bytes.length < 44) return bytes;
  dv.setUint32(40, crc32(bytes.subarray(0, 40)), true);
  for (let at = 44; at + 12 <= bytes.length;) {
    const n = dv.getUint32(at + 4, true) + dv.getUint32(at + 8, true) * 2 ** 32;
    if (at + 16 + n > bytes.length) break;
    dv.setUint32(at + 12 + n, crc32(bytes.subarray(at + 12, at + 12 + n)), true);
    at += 16 + n;
  }
  return bytes;
}

/** The f32 bit patterns of `x` (to compare NaN payloads and signed zeros exactly). */
export function bits(x: Float32Array): Uint32Array {
  return new Uint32Array(x.buffer, x.byteOffset, x.length);
}

/** True when `a` and `b` hold the same bytes (fast, unlike a deep `toEqual` of large arrays). */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

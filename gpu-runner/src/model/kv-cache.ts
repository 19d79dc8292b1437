/**
 * The KV cache the decoder graph reads: per layer, keys and values as [kvHeads, capacity, headDim],
 * a valid length per head, and the original absolute position of every kept entry. Heads of a layer
 * may hold different numbers of entries (after head-wise eviction); the graph masks the padding.
 */
import type { LlamaConfig } from "./config";

export interface LayerCache {
  keys: Float32Array; //      [kvHeads, capacity, headDim]
  values: Float32Array; //    [kvHeads, capacity, headDim]
  positions: Int32Array; //   [kvHeads, capacity]
  lengths: Int32Array; //     [kvHeads]
}

export class KvCache {
  readonly layers: LayerCache[];
  readonly kvHeads: number;
  readonly headDim: number;
  capacity: number;
  /** The position the next token takes: the length of the whole history fed so far. */
  nextPosition = 0;

  constructor(config: Pick<LlamaConfig, "numLayers" | "numKvHeads" | "headDim">, capacity = 64) {
    this.kvHeads = config.numKvHeads;
    this.headDim = config.headDim;
    this.capacity = capacity;
    this.layers = Array.from({ length: config.numLayers }, () => this.emptyLayer(capacity));
  }

  private emptyLayer(capacity: number): LayerCache {
    const n = this.kvHeads * capacity;
    return {
      keys: new Float32Array(n * this.headDim),
      values: new Float32Array(n * this.headDim),
      positions: new Int32Array(n),
      lengths: new Int32Array(this.kvHeads),
    };
  }

  /** The longest head of any layer. */
  get maxLength(): number {
    let m = 0;
    for (const layer of this.layers) for (const n of layer.lengths) m = Math.max(m, n);
    return m;
  }

  /** Total cached (head, token) entries over all layers. */
  get entries(): number {
    let n = 0;
    for (const layer of this.layers) for (const len of layer.lengths) n += len;
    return n;
  }

  /** Makes room for `extra` more entries in every head, growing geometrically. */
  reserve(extra: number): void {
    const need = this.maxLength + extra;
    if (need <= this.capacity) return;
    let cap = Math.max(this.capacity, 64);
    while (cap < need) cap *= 2;
    this.resize(cap);
  }

  /** Grows every head to hold at least `entries` (exactly that many when it grows). */
  ensureCapacity(entries: number): void {
    if (entries > this.capacity) this.resize(entries);
  }

  private resize(cap: number): void {
    const D = this.headDim;
    for (let l = 0; l < this.layers.length; l++) {
      const old = this.layers[l];
      const next = this.emptyLayer(cap);
      next.lengths.set(old.lengths);
      for (let h = 0; h < this.kvHeads; h++) {
        const n = old.lengths[h];
        next.keys.set(old.keys.subarray(h * this.capacity * D, (h * this.capacity + n) * D), h * cap * D);
        next.values.set(old.values.subarray(h * this.capacity * D, (h * this.capacity + n) * D), h * cap * D);
        next.positions.set(old.positions.subarray(h * this.capacity, h * this.capacity + n), h * cap);
      }
      this.layers[l] = next;
    }
    this.capacity = cap;
  }

  /**
   * Appends the new tokens' K/V of every layer (each [kvHeads, rows, headDim], as the graph returns
   * them) at `positions`: the first `positions.length` of the `rows` tokens (the rest, a scoring
   * span, is dropped).
   */
  append(keys: Float32Array[], values: Float32Array[], positions: readonly number[], rows = positions.length): void {
    const T = positions.length;
    if (T > rows) throw new Error(`append: ${T} positions for ${rows} rows`);
    this.reserve(T);
    const D = this.headDim;
    for (let l = 0; l < this.layers.length; l++) {
      const layer = this.layers[l];
      for (let h = 0; h < this.kvHeads; h++) {
        const at = h * this.capacity + layer.lengths[h];
        layer.keys.set(keys[l].subarray(h * rows * D, (h * rows + T) * D), at * D);
        layer.values.set(values[l].subarray(h * rows * D, (h * rows + T) * D), at * D);
        for (let t = 0; t < T; t++) layer.positions[at + t] = positions[t];
        layer.lengths[h] += T;
      }
    }
    for (const p of positions) this.nextPosition = Math.max(this.nextPosition, p + 1);
  }

  /**
   * Keeps, in head h of layer l, only the entries at `keep[h]` (ascending indices into the head's
   * current entries), moved to the front in that order, with their positions.
   */
  keep(l: number, keep: readonly Int32Array[]): void {
    const layer = this.layers[l];
    const D = this.headDim;
    for (let h = 0; h < this.kvHeads; h++) {
      const idx = keep[h];
      const base = h * this.capacity;
      let prev = -1;
      for (let i = 0; i < idx.length; i++) {
        const j = idx[i];
        // Ascending indices: entry j moves to i ≤ j, so copying front to back never overwrites a
        // later source.
        if (j <= prev || j >= layer.lengths[h]) throw new Error(`keep: index ${j} in head ${h} of layer ${l} is out of order or range`);
        prev = j;
        if (j !== i) {
          layer.keys.copyWithin((base + i) * D, (base + j) * D, (base + j + 1) * D);
          layer.values.copyWithin((base + i) * D, (base + j) * D, (base + j + 1) * D);
          layer.positions[base + i] = layer.positions[base + j];
        }
      }
      layer.lengths[h] = idx.length;
    }
  }

  /**
   * Layer `l`'s keys and values as [kvHeads, n, headDim] with n = the longest head: the buffers
   * themselves when full, else a compact copy. The graph then sees entry i at index i, which ggml
   * numerics need (the order of its additions depends on the index).
   */
  packed(l: number): { keys: Float32Array; values: Float32Array; length: number } {
    const n = this.maxLength;
    const layer = this.layers[l];
    if (n === this.capacity) return { keys: layer.keys, values: layer.values, length: n };
    const D = this.headDim;
    const keys = new Float32Array(this.kvHeads * n * D);
    const values = new Float32Array(this.kvHeads * n * D);
    for (let h = 0; h < this.kvHeads; h++) {
      keys.set(layer.keys.subarray(h * this.capacity * D, (h * this.capacity + n) * D), h * n * D);
      values.set(layer.values.subarray(h * this.capacity * D, (h * this.capacity + n) * D), h * n * D);
    }
    return { keys, values, length: n };
  }

  /** A deep copy (for branching a generation off a shared prefix). */
  clone(): KvCache {
    const c = Object.create(KvCache.prototype) as KvCache;
    Object.assign(c, {
      kvHeads: this.kvHeads, headDim: this.headDim, capacity: this.capacity, nextPosition: this.nextPosition,
      layers: this.layers.map((l) => ({
        keys: l.keys.slice(), values: l.values.slice(), positions: l.positions.slice(), lengths: l.lengths.slice(),
      })),
    });
    return c;
  }
}

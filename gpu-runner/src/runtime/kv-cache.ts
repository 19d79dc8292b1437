/**
 * The KV cache the decoder graph reads: per layer, keys and values as [kvHeads, capacity, headDim],
 * a valid length per head, and the original absolute position of every kept entry. Heads of a layer
 * may hold different numbers of entries (after head-wise eviction); the graph masks the padding.
 * Each layer has its own capacity: under sensitivity-aware budgets one layer may keep ten times what
 * another keeps, and sizing every layer for the largest would waste most of the memory.
 */
import type { LlamaConfig } from "./config";

export interface LayerCache {
  keys: Float32Array; //      [kvHeads, capacity, headDim]
  values: Float32Array; //    [kvHeads, capacity, headDim]
  positions: Int32Array; //   [kvHeads, capacity]
  /**
   * [kvHeads, capacity]: each entry's index in what the cache has read (the history, then any question
   * and answer), whatever position RoPE gave it. Compaction moves `positions`, and blocks after it are
   * computed at compact positions; origins stay the token's index, so what a cache kept of the history
   * can be read at any time. Not stored in .kvc files: a loaded cache's origins are its positions.
   */
  origins: Int32Array;
  lengths: Int32Array; //     [kvHeads]
  /** Entries each head's buffer can hold. */
  capacity: number;
}

/** What {@link KvCache.mark} records: the counters and every head's length. */
export interface CacheMark {
  readonly tokensRead: number;
  readonly nextPosition: number;
  readonly lengths: readonly Int32Array[];
}

/**
 * Entries per head a buffer holds: always even, and at least 2. A decoding step's graph halves each
 * head's entries so that two threads share a head's products evenly (decoder-graph.ts).
 */
export function evenEntries(n: number): number {
  return Math.max(2, n + (n & 1));
}

export class KvCache {
  readonly layers: LayerCache[];
  readonly kvHeads: number;
  readonly headDim: number;
  /** The position the next token takes: the history's length, or less once compacted. */
  nextPosition = 0;
  /** Tokens appended so far: the next token's index in what the cache has read (its origin). */
  tokensRead = 0;

  constructor(config: Pick<LlamaConfig, "numLayers" | "numKvHeads" | "headDim">, capacity = 64) {
    this.kvHeads = config.numKvHeads;
    this.headDim = config.headDim;
    this.layers = Array.from({ length: config.numLayers }, () => this.emptyLayer(capacity));
  }

  private emptyLayer(entries: number): LayerCache {
    const capacity = evenEntries(entries);
    const n = this.kvHeads * capacity;
    return {
      keys: new Float32Array(n * this.headDim),
      values: new Float32Array(n * this.headDim),
      positions: new Int32Array(n),
      origins: new Int32Array(n),
      lengths: new Int32Array(this.kvHeads),
      capacity,
    };
  }

  /** The longest head of layer `l`. */
  layerLength(l: number): number {
    let m = 0;
    for (const n of this.layers[l].lengths) m = Math.max(m, n);
    return m;
  }

  /** The longest head of any layer. */
  get maxLength(): number {
    let m = 0;
    for (let l = 0; l < this.layers.length; l++) m = Math.max(m, this.layerLength(l));
    return m;
  }

  /** Total cached (head, token) entries over all layers. */
  get entries(): number {
    let n = 0;
    for (const layer of this.layers) for (const len of layer.lengths) n += len;
    return n;
  }

  /** Entries per layer, over all its KV heads. */
  get layerEntries(): number[] {
    return this.layers.map((layer) => layer.lengths.reduce((a, b) => a + b, 0));
  }

  /** Bytes its buffers take (keys, values, positions, lengths), spare capacity included. */
  get bytes(): number {
    let n = 0;
    for (const layer of this.layers)
      n +=
        layer.keys.byteLength +
        layer.values.byteLength +
        layer.positions.byteLength +
        layer.lengths.byteLength;
    return n;
  }

  /** Where entry i of head h of layer l starts in its keys/values (multiply by headDim for floats). */
  slot(l: number, h: number, i: number): number {
    return h * this.layers[l].capacity + i;
  }

  /**
   * Makes room for `extra` more entries in every head, growing a layer by a quarter at least (so
   * appends stay amortised) and to a multiple of 64.
   */
  reserve(extra: number): void {
    for (let l = 0; l < this.layers.length; l++) {
      const need = this.layerLength(l) + extra;
      const layer = this.layers[l];
      if (need <= layer.capacity) continue;
      this.resize(l, Math.ceil(Math.max(need, layer.capacity * 1.25, 64) / 64) * 64);
    }
  }

  /**
   * Shrinks every layer to its longest head, rounded up to an even number (as a cache loaded from the
   * store is): block-wise prefill leaves room for M·H + B entries per head, and a layer much roomier
   * than its entries is packed into a fresh copy on every decoding step.
   */
  shrinkToFit(): void {
    for (let l = 0; l < this.layers.length; l++) {
      const n = evenEntries(this.layerLength(l));
      if (this.layers[l].capacity > n) this.resize(l, n);
    }
  }

  /**
   * Sizes every layer for exactly `extra` more entries than its longest head (an even number in all,
   * as always), copying any layer whose buffer holds another number: before a generation, so that
   * the buffers a decoding step reads depend on the cache's entries and `extra` alone, never on how
   * the cache was sized before. A step hands the graph a layer's whole buffer (padding masked) or,
   * when it is much roomier than its entries, a packed copy; so spare capacity costs reads or a copy
   * at every step, and in `fast` numerics the buffer's length reaches the last bits of the result
   * (README, "The runtime").
   */
  fit(extra: number): void {
    for (let l = 0; l < this.layers.length; l++) {
      const need = Math.max(1, this.layerLength(l) + extra);
      if (this.layers[l].capacity !== evenEntries(need)) this.resize(l, need);
    }
  }

  /** Whether some layer's longest head fills its buffer (the next append would grow it). */
  get full(): boolean {
    return this.layers.some((layer, l) => this.layerLength(l) >= layer.capacity);
  }

  /** Grows layer `l`'s heads to hold at least `entries` (exactly that many when it grows). */
  ensureCapacity(l: number, entries: number): void {
    if (entries > this.layers[l].capacity) this.resize(l, entries);
  }

  private resize(l: number, cap: number): void {
    this.layers[l] = this.copyLayer(l, cap);
  }

  /** Layer `l`'s entries in fresh buffers of `cap` entries per head. */
  private copyLayer(l: number, cap: number): LayerCache {
    const D = this.headDim;
    const old = this.layers[l];
    const next = this.emptyLayer(cap);
    const to = next.capacity;
    next.lengths.set(old.lengths);
    for (let h = 0; h < this.kvHeads; h++) {
      const n = old.lengths[h];
      const from = h * old.capacity;
      next.keys.set(old.keys.subarray(from * D, (from + n) * D), h * to * D);
      next.values.set(old.values.subarray(from * D, (from + n) * D), h * to * D);
      next.positions.set(old.positions.subarray(from, from + n), h * to);
      next.origins.set(old.origins.subarray(from, from + n), h * to);
    }
    return next;
  }

  /**
   * Appends the new tokens' K/V of every layer (each [kvHeads, rows, headDim], as the graph returns
   * them) at `positions`: the first `positions.length` of the `rows` tokens (the rest, a scoring
   * span, is dropped).
   */
  append(
    keys: Float32Array[],
    values: Float32Array[],
    positions: readonly number[],
    rows = positions.length,
  ): void {
    const T = positions.length;
    if (T > rows) throw new Error(`append: ${T} positions for ${rows} rows`);
    this.reserve(T);
    const D = this.headDim;
    for (let l = 0; l < this.layers.length; l++) {
      const layer = this.layers[l];
      for (let h = 0; h < this.kvHeads; h++) {
        const at = h * layer.capacity + layer.lengths[h];
        layer.keys.set(keys[l].subarray(h * rows * D, (h * rows + T) * D), at * D);
        layer.values.set(values[l].subarray(h * rows * D, (h * rows + T) * D), at * D);
        for (let t = 0; t < T; t++) {
          layer.positions[at + t] = positions[t];
          layer.origins[at + t] = this.tokensRead + t;
        }
        layer.lengths[h] += T;
      }
    }
    for (const p of positions) this.nextPosition = Math.max(this.nextPosition, p + 1);
    this.tokensRead += T;
  }

  /**
   * Keeps, in head h of layer l, only the entries at `keep[h]` (ascending indices into the head's
   * current entries), moved to the front in that order, with their positions.
   */
  keep(l: number, keep: readonly Int32Array[]): void {
    const layer = this.layers[l];
    const D = this.headDim;
    // Every head's indices are checked before any entry moves: a bad one leaves the layer as it was.
    for (let h = 0; h < this.kvHeads; h++) {
      const idx = keep[h];
      for (let i = 0; i < idx.length; i++) {
        const j = idx[i];
        if ((i > 0 && j <= idx[i - 1]) || j >= layer.lengths[h])
          throw new Error(`keep: index ${j} in head ${h} of layer ${l} is out of order or range`);
      }
    }
    for (let h = 0; h < this.kvHeads; h++) {
      const idx = keep[h];
      const base = h * layer.capacity;
      // Ascending indices: entry j moves to i ≤ j, so copying front to back never overwrites a later
      // source. Consecutive kept entries move together, one copy per run.
      for (let i = 0; i < idx.length;) {
        const j = idx[i];
        let n = 1;
        while (i + n < idx.length && idx[i + n] === j + n) n++;
        if (j !== i) {
          layer.keys.copyWithin((base + i) * D, (base + j) * D, (base + j + n) * D);
          layer.values.copyWithin((base + i) * D, (base + j) * D, (base + j + n) * D);
          layer.positions.copyWithin(base + i, base + j, base + j + n);
          layer.origins.copyWithin(base + i, base + j, base + j + n);
        }
        i += n;
      }
      layer.lengths[h] = idx.length;
    }
  }

  /**
   * Layer `l`'s keys and values as [kvHeads, n, headDim] with n = its longest head (`even`: rounded
   * up to an even number of at least 2, as a decoding step's graph takes them): the buffers themselves
   * when that is their capacity, else a compact copy. The graph's work grows with n, so a roomy buffer
   * is not handed over whole; and ggml numerics need entry i at index i and nothing between the
   * cache's entries and the new tokens' (the order of its additions depends on the index).
   */
  packed(l: number, even = false): { keys: Float32Array; values: Float32Array; length: number } {
    const layer = this.layers[l];
    const n = even ? evenEntries(this.layerLength(l)) : this.layerLength(l);
    if (n === layer.capacity) return { keys: layer.keys, values: layer.values, length: n };
    const D = this.headDim;
    const keys = new Float32Array(this.kvHeads * n * D);
    const values = new Float32Array(this.kvHeads * n * D);
    for (let h = 0; h < this.kvHeads; h++) {
      keys.set(
        layer.keys.subarray(h * layer.capacity * D, (h * layer.capacity + n) * D),
        h * n * D,
      );
      values.set(
        layer.values.subarray(h * layer.capacity * D, (h * layer.capacity + n) * D),
        h * n * D,
      );
    }
    return { keys, values, length: n };
  }

  /** Where the cache stands now: what {@link rewind} takes it back to. */
  mark(): CacheMark {
    return {
      tokensRead: this.tokensRead,
      nextPosition: this.nextPosition,
      lengths: this.layers.map((layer) => layer.lengths.slice()),
    };
  }

  /**
   * Takes off every entry appended since `mark`, so that a prompt and its continuations can run on a
   * cache in place and leave it as it was, with no copy made. Appending only writes past a head's
   * entries, so the entries before the mark are untouched. Throws when the heads' lengths show more than appends
   * since (an eviction, which may have moved entries from before the mark).
   */
  rewind(mark: CacheMark): void {
    const added = this.tokensRead - mark.tokensRead;
    const appendedOnly =
      added >= 0 &&
      mark.lengths.length === this.layers.length &&
      this.layers.every((layer, l) =>
        layer.lengths.every((n, h) => n - mark.lengths[l][h] === added),
      );
    if (!appendedOnly)
      throw new Error("rewind: the cache changed other than by appending since the mark");
    this.layers.forEach((layer, l) => layer.lengths.set(mark.lengths[l]));
    this.tokensRead = mark.tokensRead;
    this.nextPosition = mark.nextPosition;
  }

  /**
   * A deep copy (for branching a generation off a shared prefix) whose layers hold their longest
   * head and `room` entries more: spare capacity is never copied, and a copy sized for what will be
   * appended is handed to the graph whole, with no padding to read at every step.
   */
  clone(room = 0): KvCache {
    const c = Object.create(KvCache.prototype) as KvCache;
    Object.assign(c, {
      kvHeads: this.kvHeads,
      headDim: this.headDim,
      nextPosition: this.nextPosition,
      tokensRead: this.tokensRead,
      layers: this.layers.map((_, l) => this.copyLayer(l, Math.max(1, this.layerLength(l) + room))),
    });
    return c;
  }
}

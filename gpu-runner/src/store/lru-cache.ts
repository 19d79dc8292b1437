/**
 * A least-recently-used cache bounded in bytes, for loaded episode caches in the runner. Concurrent
 * requests for a key that is loading share that one load; a failed load is not kept. An entry larger
 * than the whole budget is handed out but not kept. Values are shared: callers must not change them
 * (a decoder appends to a clone).
 */
export interface LruStats {
  hits: number;
  misses: number;
  evictions: number;
  /** Bytes held now, and entries. */
  bytes: number;
  entries: number;
}

export class LruCache<T> {
  private readonly entries = new Map<string, { value: T; bytes: number }>(); // in use order, oldest first
  private readonly loading = new Map<string, Promise<T>>();
  private held = 0;
  private counts = { hits: 0, misses: 0, evictions: 0 };

  constructor(
    readonly maxBytes: number,
    private readonly sizeOf: (value: T) => number,
  ) {
    if (!(maxBytes >= 0)) throw new RangeError(`maxBytes must be ≥ 0, not ${maxBytes}`);
  }

  /** The value for `key`: cached, being loaded by another caller, or loaded now by `load`. */
  async get(key: string, load: () => Promise<T>): Promise<T> {
    const hit = this.entries.get(key);
    if (hit !== undefined) {
      this.counts.hits++;
      this.entries.delete(key);
      this.entries.set(key, hit); // most recently used last
      return hit.value;
    }
    const pending = this.loading.get(key);
    if (pending !== undefined) {
      this.counts.hits++;
      return pending;
    }
    this.counts.misses++;
    const promise = (async () => {
      try {
        const value = await load();
        this.insert(key, value);
        return value;
      } finally {
        this.loading.delete(key);
      }
    })();
    this.loading.set(key, promise);
    return promise;
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  delete(key: string): void {
    const e = this.entries.get(key);
    if (e === undefined) return;
    this.entries.delete(key);
    this.held -= e.bytes;
  }

  get stats(): LruStats {
    return { ...this.counts, bytes: this.held, entries: this.entries.size };
  }

  private insert(key: string, value: T): void {
    const bytes = this.sizeOf(value);
    if (bytes > this.maxBytes) return;
    this.delete(key);
    while (this.held + bytes > this.maxBytes) {
      const [oldest, e] = this.entries.entries().next().value as [string, { value: T; bytes: number }]; // non-empty: held > 0
      this.entries.delete(oldest);
      this.held -= e.bytes;
      this.counts.evictions++;
    }
    this.entries.set(key, { value, bytes });
    this.held += bytes;
  }
}

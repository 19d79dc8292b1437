import { describe, expect, it } from "vitest";
import { LruCache } from "./lru-cache";

const sized = (n: number) => ({ n });

describe("LruCache", () => {
  it("keeps what fits in its byte budget, evicting the least recently used", async () => {
    const lru = new LruCache<{ n: number }>(100, (v) => v.n);
    const loads: string[] = [];
    const load = (key: string, n: number) => () => {
      loads.push(key);
      return Promise.resolve(sized(n));
    };
    await lru.get("a", load("a", 40));
    await lru.get("b", load("b", 40));
    await lru.get("a", load("a", 40)); // a is now the most recent
    await lru.get("c", load("c", 40)); // evicts b
    expect(lru.has("a") && lru.has("c") && !lru.has("b")).toBe(true);
    expect(lru.stats).toEqual({ hits: 1, misses: 3, evictions: 1, bytes: 80, entries: 2 });
    await lru.get("b", load("b", 40));
    expect(loads).toEqual(["a", "b", "c", "b"]);
    expect(lru.stats.bytes).toBeLessThanOrEqual(100);
  });

  it("shares one load among concurrent requests, and forgets failed loads", async () => {
    const lru = new LruCache<{ n: number }>(100, (v) => v.n);
    let calls = 0;
    let release: (v: { n: number }) => void = () => undefined;
    const slow = () => {
      calls++;
      return new Promise<{ n: number }>((r) => (release = r));
    };
    const [p1, p2, p3] = [lru.get("k", slow), lru.get("k", slow), lru.get("k", slow)];
    release(sized(10));
    const [a, b, c] = await Promise.all([p1, p2, p3]);
    expect(calls).toBe(1);
    expect(a).toBe(b);
    expect(b).toBe(c);
    await expect(lru.get("bad", () => Promise.reject(new Error("boom")))).rejects.toThrow("boom");
    expect(lru.has("bad")).toBe(false);
    expect(await lru.get("bad", () => Promise.resolve(sized(1)))).toEqual(sized(1));
  });

  it("hands out but does not keep an entry larger than the budget", async () => {
    const lru = new LruCache<{ n: number }>(50, (v) => v.n);
    await lru.get("small", () => Promise.resolve(sized(20)));
    expect(await lru.get("huge", () => Promise.resolve(sized(60)))).toEqual(sized(60));
    expect(lru.has("huge")).toBe(false);
    expect(lru.has("small")).toBe(true);
  });
});

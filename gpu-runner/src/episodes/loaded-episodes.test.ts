import { describe, expect, it } from "vitest";
import type { KvCache } from "../runtime/kv-cache";
import { LoadedEpisodes } from "./loaded-episodes";
import type { EpisodeManifest } from "./manifest";

// Only what LoadedEpisodes reads: a cache's size, a manifest's key. (episode-store.test.ts runs it on real ones.)
const sized = (bytes: number) => ({ bytes }) as unknown as KvCache;
const manifest = { tenant: "t", conversation: "c", version: "v1" } as EpisodeManifest;

/** LoadedEpisodes over a store whose episode `e` is `sizes[e]` bytes; `loads` records each load. */
function loadedOver(maxBytes: number, sizes: number[]) {
  const loads: number[] = [];
  const loaded = new LoadedEpisodes(
    { loadEpisode: async (_m, e) => (loads.push(e), sized(sizes[e])) },
    maxBytes,
  );
  return { loaded, loads };
}

describe("LoadedEpisodes", () => {
  it("keeps what fits in its byte budget, evicting the least recently used (a hit refreshes)", async () => {
    const { loaded, loads } = loadedOver(100, [40, 40, 40]);
    await loaded.get(manifest, 0);
    await loaded.get(manifest, 1);
    await loaded.get(manifest, 0); // 0 is now the most recent
    await loaded.get(manifest, 2); // evicts 1
    expect(loaded.stats).toEqual({ hits: 1, misses: 3, evictions: 1, bytes: 80, entries: 2 });
    await loaded.get(manifest, 0);
    await loaded.get(manifest, 2);
    await loaded.get(manifest, 1);
    expect(loads).toEqual([0, 1, 2, 1]);
    expect(loaded.stats.bytes).toBeLessThanOrEqual(100);
  });

  it("shares one load among concurrent requests, and forgets failed loads", async () => {
    let calls = 0;
    let release: (c: KvCache) => void = () => undefined;
    let fail = true;
    const loaded = new LoadedEpisodes(
      {
        loadEpisode: (_m, e) => {
          calls++;
          if (e === 1) return fail ? Promise.reject(new Error("boom")) : Promise.resolve(sized(1));
          return new Promise<KvCache>((r) => (release = r));
        },
      },
      100,
    );
    const pending = [loaded.get(manifest, 0), loaded.get(manifest, 0), loaded.get(manifest, 0)];
    release(sized(10));
    const [a, b, c] = await Promise.all(pending);
    expect(calls).toBe(1);
    expect(a).toBe(b);
    expect(b).toBe(c);
    expect(loaded.stats).toMatchObject({ hits: 2, misses: 1 });
    await expect(loaded.get(manifest, 1)).rejects.toThrow("boom");
    expect(loaded.stats.entries).toBe(1);
    fail = false;
    expect(await loaded.get(manifest, 1)).toEqual(sized(1));
    expect(calls).toBe(3);
  });

  it("hands out but does not keep a cache larger than the budget, and keeps the others", async () => {
    const { loaded, loads } = loadedOver(50, [20, 60]);
    await loaded.get(manifest, 0);
    expect(await loaded.get(manifest, 1)).toEqual(sized(60));
    expect(loaded.stats).toMatchObject({ entries: 1, bytes: 20, evictions: 0 });
    await loaded.get(manifest, 0);
    expect(loads).toEqual([0, 1]);
  });

  it("with a budget of 0 keeps nothing, but still shares a load in flight", async () => {
    const { loaded, loads } = loadedOver(0, [20]);
    const [a, b] = await Promise.all([loaded.get(manifest, 0), loaded.get(manifest, 0)]);
    expect(a).toBe(b);
    await loaded.get(manifest, 0);
    expect(loads).toEqual([0, 0]);
    expect(loaded.stats).toMatchObject({ entries: 0, bytes: 0 });
  });
});

/**
 * Versions in the episode store, on every object store (filesystem; S3 on a loopback server): publish
 * order, the pointer compare-and-swap, crashes before the manifest, readers during publishes, garbage
 * collection. And, on SmolLM2: a stored f32 cache continues generation exactly as the in-memory one.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { episodeKey, manifestKey } from "@epicache/shared";
import { generate, KvCache, openChatModel } from "../runtime";
import { FsObjectStore, type ObjectStore } from "../store";
import { codeOf, NEEDS_PULL, pulledModel } from "../testing";
import { SKIP_S3, storeSubjects } from "../testing/store-subjects";
import { EpisodeStore } from "./episode-store";
import { LoadedEpisodes } from "./loaded-episodes";
import { MANIFEST_FORMAT, type EpisodeManifest } from "./manifest";
import {
  markedCache,
  markOf,
  MARKED_FINGERPRINT,
  writeMarkedVersion,
} from "../testing/marked-versions";

const FP = MARKED_FINGERPRINT;
/** A version of `episodes` marked caches under tenant t1, conversation c1 (not yet published). */
const buildVersion = (
  store: EpisodeStore,
  version: string,
  mark: number,
  createdAt: string,
  episodes = 2,
) =>
  writeMarkedVersion(
    store,
    { tenant: "t1", conversation: "c1", version },
    mark,
    createdAt,
    episodes,
  );

const t = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s)).toISOString();

describe.each(storeSubjects())("episode store on $name", (subject) => {
  let objects: ObjectStore | undefined;
  beforeAll(async () => {
    objects = await subject.open();
  }, 120_000);
  afterAll(() => subject.close());
  const test = (
    name: string,
    f: (s: EpisodeStore, o: ObjectStore) => Promise<void>,
    timeout?: number,
  ) =>
    it(
      name,
      async (ctx) => {
        if (objects === undefined) return ctx.skip(SKIP_S3);
        await f(new EpisodeStore(objects), objects);
      },
      timeout,
    );

  test("publishes blobs, then the manifest, then the pointer; never backwards; a version once", async (s) => {
    await expect(s.resolve("t1", "c1")).rejects.toMatchObject({ code: "store_not_found" });
    const v1 = await buildVersion(s, "v1", 1, t(1));
    // Blobs alone (a build that crashed before its manifest) publish nothing.
    await expect(s.resolve("t1", "c1")).rejects.toMatchObject({ code: "store_not_found" });
    expect(await s.publish(v1)).toEqual({ active: "v1", moved: true });
    const got = await s.resolve("t1", "c1");
    expect(got).toEqual(v1);
    expect(markOf(await s.loadEpisode(got, 1))).toBe(2);
    const loaded = await s.loadEpisode(got, 0);
    expect(Array.from(loaded.layers[0].lengths)).toEqual([3, 1]);
    expect(loaded.layers[0].positions[loaded.layers[0].capacity]).toBe(1);
    expect(loaded.nextPosition).toBe(40);

    const v3 = await buildVersion(s, "v3", 30, t(3));
    expect(await s.publish(v3)).toEqual({ active: "v3", moved: true });
    // An older build finishing late stays inactive.
    const v2 = await buildVersion(s, "v2", 20, t(2));
    expect(await s.publish(v2)).toEqual({ active: "v3", moved: false });
    expect((await s.resolve("t1", "c1")).version).toBe("v3");
    // Publishing v3 again is a retry; another manifest for v3 is a conflict.
    expect(await s.publish(v3)).toEqual({ active: "v3", moved: true });
    expect(await codeOf(s.publish({ ...v3, contextTokens: 41 }))).toBe("store_conflict");
    // Nor can a build write into a published version: its readers check its blobs against its manifest.
    expect(
      await codeOf(
        s.writeEpisode({ tenant: "t1", conversation: "c1", version: "v3" }, 0, markedCache(99), {
          fingerprint: FP,
          budget: 4,
          dtype: "f32",
        }),
      ),
    ).toBe("store_conflict");
    expect(markOf(await s.loadEpisode(v3, 0))).toBe(30);
    // A crash mid-build of v4: blobs, no manifest. v3 keeps serving.
    await buildVersion(s, "v4", 40, t(4));
    expect((await s.resolve("t1", "c1")).version).toBe("v3");
    expect(await s.conversations("t1")).toEqual(["c1"]);
  });

  test("a blob that does not match its manifest is store_invalid", async (s, o) => {
    const m = await buildVersion(s, "w1", 5, t(1));
    await s.publish({ ...m, conversation: "c1" });
    // Replace episode 1's blob with another cache of the same size: the SHA-256 catches it.
    await o.put(episodeKey("t1", "c1", "w1", 1), (await o.get(m.episodes[0].key)).bytes);
    await expect(s.loadEpisode(m, 1)).rejects.toMatchObject({
      code: "store_invalid",
      message: expect.stringContaining("SHA-256"),
    });
    await o.put(episodeKey("t1", "c1", "w1", 1), new Uint8Array(10));
    await expect(s.loadEpisode(m, 1)).rejects.toMatchObject({ code: "store_invalid" });
  });

  test("collects inactive versions after the grace period, manifest first, and never the active one or a build in progress", async (s, o) => {
    const store = s;
    const names = async () => {
      const out = new Set<string>();
      for await (const x of o.list("tenants/t1/conversations/g1/"))
        out.add(x.key.split("/")[5] ?? x.key.split("/")[4]);
      return [...out].sort();
    };
    const mk = async (v: string, n: number) => {
      const m = await buildVersion(store, v, n, t(n));
      return { ...m, conversation: "g1", episodes: m.episodes };
    };
    // Versions of conversation g1 (buildVersion writes under c1; rewrite under g1).
    for (const [v, n] of [
      ["a1", 1],
      ["a2", 2],
    ] as const) {
      const at = { tenant: "t1", conversation: "g1", version: v };
      const episodes = [
        await store.writeEpisode(at, 0, markedCache(n), {
          fingerprint: FP,
          budget: 4,
          dtype: "f16",
        }),
      ];
      const m = await mk(v, n);
      await store.publish({ ...m, episodes: [{ ...m.episodes[0], ...episodes[0] }] });
    }
    await store.writeEpisode(
      { tenant: "t1", conversation: "g1", version: "a3" },
      0,
      markedCache(3),
      { fingerprint: FP, budget: 4, dtype: "f16" },
    );
    expect(await names()).toEqual(["a1", "a2", "a3", "active.json"]);
    // Within the grace period nothing goes.
    expect(await store.gc("t1", "g1", { graceMs: 60_000 })).toEqual({
      deleted: [],
      kept: ["a1", "a2", "a3"],
    });
    // Long after: a1 goes; a2 is active. a3 (no manifest) is as old, so it goes too.
    const later = Date.now() + 120_000;
    expect(await store.gc("t1", "g1", { graceMs: 60_000, now: later })).toEqual({
      deleted: ["a1", "a3"],
      kept: ["a2"],
    });
    expect(await names()).toEqual(["a2", "active.json"]);
    expect(await o.head(manifestKey("t1", "g1", "a1"))).toBeNull();
    expect((await store.resolve("t1", "g1")).version).toBe("a2");
  });

  test("readers during interleaved publishes see one version whole, never a mix", async (s) => {
    const versions = 8;
    let publishing = true;
    const seen = new Set<string>();
    const reader = async () => {
      let reads = 0;
      while (publishing || reads === 0) {
        let m: EpisodeManifest;
        try {
          m = await s.resolve("t1", "r1");
        } catch (e) {
          if ((e as { code?: string }).code === "store_not_found") continue;
          throw e;
        }
        const n = Number(m.version.slice(1));
        for (const e of m.episodes)
          expect(markOf(await s.loadEpisode(m, e.id))).toBe(100 * n + e.id);
        seen.add(m.version);
        reads++;
      }
      return reads;
    };
    const writer = async () => {
      try {
        for (let v = 1; v <= versions; v++) {
          const at = { tenant: "t1", conversation: "r1", version: `r${v}` };
          const episodes: EpisodeManifest["episodes"] = [];
          for (let e = 0; e < 3; e++) {
            episodes.push({
              id: e,
              ...(await s.writeEpisode(at, e, markedCache(100 * v + e), {
                fingerprint: FP,
                budget: 4,
                dtype: "f32",
              })),
              centroid: [1, 0],
              windows: [],
              representatives: [],
              entries: 8,
            });
          }
          const base = await buildVersion(s, `r${v}x`, 0, t(v), 0);
          expect((await s.publish({ ...base, ...at, episodes, createdAt: t(v) })).active).toBe(
            `r${v}`,
          );
        }
      } finally {
        publishing = false;
      }
    };
    const [, ...reads] = await Promise.all([writer(), reader(), reader()]);
    expect(reads.every((r) => r > 0)).toBe(true);
    expect(seen.size).toBeGreaterThanOrEqual(2);
    expect((await s.resolve("t1", "r1")).version).toBe(`r${versions}`);
  }, 120_000);
});

const chatPath = pulledModel("chat");

describe.skipIf(!chatPath)(`a stored cache on SmolLM2 ${NEEDS_PULL}`, () => {
  const dir = mkdtempSync(join(tmpdir(), "epicache-stored-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("continues generation with the same tokens as the in-memory cache (f32)", async () => {
    const model = await openChatModel(chatPath as string, { numerics: "exact" });
    try {
      const history = model.tokenizer.encodeChat([
        {
          role: "user",
          content: "My sister Maya moved to Lisbon in March and works at a bakery near the river.",
        },
        { role: "assistant", content: "That sounds lovely. How is she finding Lisbon?" },
      ]);
      const cache = new KvCache(model.config);
      // Prefill the history into the cache (no token generated).
      expect((await generate(model, history, { maxTokens: 0, cache }).next()).done).toBe(true);
      expect(cache.nextPosition).toBe(history.length);
      // Room to spare in the cache built in memory, as block-wise prefill leaves it.
      for (let l = 0; l < model.config.numLayers; l++)
        cache.ensureCapacity(l, history.length + 100);
      const store = new EpisodeStore(new FsObjectStore(join(dir, "store")));
      const at = { tenant: "t", conversation: "c", version: "v" };
      const stored = await store.writeEpisode(at, 0, cache, {
        fingerprint: model.fingerprint,
        budget: null,
        dtype: "f32",
      });
      const manifest: EpisodeManifest = {
        format: MANIFEST_FORMAT,
        ...at,
        model: {
          id: "smollm2-135m-instruct-q4_1",
          fingerprint: model.fingerprint,
          numerics: "exact",
          layers: model.config.numLayers,
          kvHeads: model.config.numKvHeads,
          headDim: model.config.headDim,
        },
        embedder: { modelId: "e", dimension: 1 },
        method: "full",
        budget: null,
        block: 512,
        layerBudgets: null,
        contextTokens: history.length,
        dtype: "f32",
        routing: { rule: "centroid" },
        episodes: [
          {
            id: 0,
            ...stored,
            centroid: [1],
            windows: [],
            representatives: [],
            entries: cache.entries,
          },
        ],
        createdAt: t(0),
      };
      const loaded = await store.loadEpisode(manifest, 0);
      const question = model.tokenizer.encodeChat([
        { role: "user", content: "Where does my sister work?" },
      ]);
      // The loaded cache's buffers are exactly as long as its heads, the built one's have spare room;
      // attention over either gives the same bits (chunked attention stops at the longest head).
      expect(loaded.layers[0].capacity).not.toBe(cache.layers[0].capacity);
      expect(question.length).toBeGreaterThanOrEqual(16);
      const positions = question.map((_, i) => history.length + i);
      const first = await model.decoder.forward(question, positions, cache, [question.length - 1]);
      const again = await model.decoder.forward(question, positions, loaded, [question.length - 1]);
      expect(
        Buffer.compare(
          Buffer.from(again.logits.buffer, again.logits.byteOffset, again.logits.byteLength),
          Buffer.from(first.logits.buffer, first.logits.byteOffset, first.logits.byteLength),
        ),
      ).toBe(0);
      const tokens = async (c: KvCache) => {
        const out: number[] = [];
        for await (const tok of generate(model, question, { maxTokens: 24, cache: c.clone() }))
          out.push(tok.id);
        return out;
      };
      const a = await tokens(cache);
      expect(a.length).toBeGreaterThan(0);
      expect(await tokens(loaded)).toEqual(a);
    } finally {
      await model.decoder.release();
    }
  }, 600_000);
});

describe("loaded episodes (the runner's LRU over the store)", () => {
  it("loads an episode once for concurrent requests, keeps it, and stays within its byte budget", async () => {
    const dir = mkdtempSync(join(tmpdir(), "epicache-lru-"));
    try {
      const objects = new FsObjectStore(dir);
      let streams = 0;
      const counting: ObjectStore = Object.assign(Object.create(objects) as ObjectStore, {
        getStream: (key: string) => {
          streams++;
          return objects.getStream(key);
        },
      });
      const store = new EpisodeStore(counting);
      const m = await buildVersion(store, "v1", 7, t(1), 3);
      await store.publish(m);
      const one = (await store.loadEpisode(m, 0)).bytes; // every episode loads to this size
      streams = 0;
      const loaded = new LoadedEpisodes(store, 2.5 * one);
      const [a, b] = await Promise.all([loaded.get(m, 0), loaded.get(m, 0)]);
      expect(a).toBe(b);
      expect(streams).toBe(1);
      expect(await loaded.get(m, 0)).toBe(a);
      expect(streams).toBe(1);
      await loaded.get(m, 1);
      await loaded.get(m, 2); // three do not fit: episode 0, the least recently used, goes
      expect(loaded.stats).toMatchObject({ misses: 3, hits: 2, evictions: 1, entries: 2 });
      expect(loaded.stats.bytes).toBeLessThanOrEqual(2.5 * one);
      expect(markOf(await loaded.get(m, 0))).toBe(7);
      expect(streams).toBe(4);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

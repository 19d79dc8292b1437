/**
 * The episode store on S3 through a fault-injecting proxy (testing/fault-proxy.ts) in front of the
 * S3 test server: 500s, 503s, connection resets before and after the upstream acted, responses held
 * past the client's timeout, bodies cut short or corrupted. A publish that fails at any step leaves
 * the previous version serving and no manifest naming a missing blob; a load that fails is a
 * `store_unavailable` or `store_invalid` error, never a cache; once the fault clears, retrying works.
 * Skips without the S3 test server (CI requires it).
 */
import { CreateBucketCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { activeKey, episodeKey, manifestKey } from "@epicache/shared";
import { S3ObjectStore } from "../store";
import { codeOf } from "../testing";
import { startFaultProxy, type Fault, type FaultProxy } from "../testing/fault-proxy";
import { startS3Server, type S3TestServer } from "../testing/s3-server";
import { SKIP_S3 } from "../testing/store-subjects";
import { surveyConversation } from "../testing/store-invariants";
import { markedCache, markOf, writeMarkedVersion } from "../testing/marked-versions";
import type { EpisodeManifest } from "./manifest";
import { EpisodeStore } from "./episode-store";
import { LoadedEpisodes } from "./loaded-episodes";

const TENANT = "t1";
const BUCKET = "faults";
/** The client's patience: every fault here is over within about two timeouts. */
const TIMEOUT_MS = 1000;

/** A version of two marked caches under TENANT (not yet published). */
const writeVersion = (
  store: EpisodeStore,
  conversation: string,
  version: string,
  mark: number,
  createdAt: string,
) => writeMarkedVersion(store, { tenant: TENANT, conversation, version }, mark, createdAt);

const FAULTS: Array<[string, Fault]> = [
  ["500", { kind: "status", status: 500 }],
  ["503", { kind: "status", status: 503 }],
  ["a reset before the store acts", { kind: "reset", when: "before" }],
  ["a reset after the store acted", { kind: "reset", when: "after" }],
  ["a request held past the timeout", { kind: "delay", ms: 2.5 * TIMEOUT_MS, when: "before" }],
  [
    "an answer held past the timeout, after the store acted",
    { kind: "delay", ms: 2.5 * TIMEOUT_MS, when: "after" },
  ],
];

let s3: S3TestServer | undefined;
let proxy: FaultProxy;
/** Straight to the S3 server: what is really stored. */
let direct: S3ObjectStore;
let conversations = 0;

/** A store through the proxy with a short timeout and one retry; fresh, so no retry quota carries over. */
function proxied(): EpisodeStore {
  return new EpisodeStore(
    new S3ObjectStore({
      bucket: BUCKET,
      prefix: "p",
      client: {
        ...s3?.client,
        endpoint: proxy.endpoint,
        maxAttempts: 2,
        requestHandler: {
          connectionTimeout: TIMEOUT_MS,
          requestTimeout: TIMEOUT_MS,
          socketTimeout: TIMEOUT_MS,
          throwOnRequestTimeout: true,
        },
      },
    }),
  );
}

/** Every episode of the active version loads whole, and carries `marks`. */
async function expectServing(
  store: EpisodeStore,
  conversation: string,
  version: string,
  marks: number[],
): Promise<void> {
  const manifest = await store.resolve(TENANT, conversation);
  expect(manifest.version).toBe(version);
  for (let e = 0; e < manifest.episodes.length; e++) {
    const cache = await store.loadEpisode(manifest, e);
    expect(markOf(cache)).toBe(marks[e]);
  }
}

/** A conversation with v1 published (marks 10, 11), and v2 (marks 20, 21) for the test to publish. */
async function withV1(): Promise<{ conversation: string; store: EpisodeStore }> {
  const conversation = `c${++conversations}`;
  const store = proxied();
  await store.publish(
    await writeVersion(store, conversation, "v1", 10, "2026-01-01T00:00:01.000Z"),
  );
  return { conversation, store };
}

describe("the episode store through a faulty network to S3", () => {
  beforeAll(async () => {
    s3 = await startS3Server();
    if (s3 === undefined) return;
    proxy = await startFaultProxy(s3.endpoint);
    direct = new S3ObjectStore({ bucket: BUCKET, prefix: "p", client: s3.client });
    await direct.client.send(new CreateBucketCommand({ Bucket: BUCKET }));
  }, 120_000);
  afterAll(async () => {
    await proxy?.stop();
    await s3?.stop();
  });
  const test = (name: string, f: () => Promise<void>) =>
    it(
      name,
      async (ctx) => {
        if (s3 === undefined) return ctx.skip(SKIP_S3);
        proxy.clear();
        await f();
      },
      60_000,
    );

  /** Publishing v2 with `rule` in force fails with store_unavailable; what is stored stays whole; without it, v2 goes live. */
  async function publishThrough(
    step: "blob" | "manifest" | "pointer" | "pointer read",
    fault: Fault,
  ): Promise<void> {
    const { conversation, store } = await withV1();
    const key = {
      blob: new RegExp(`${episodeKey(TENANT, conversation, "v2", 1)}$`),
      manifest: new RegExp(`${manifestKey(TENANT, conversation, "v2")}$`),
      pointer: new RegExp(`${activeKey(TENANT, conversation)}$`),
      "pointer read": new RegExp(`${activeKey(TENANT, conversation)}$`),
    }[step];
    const method = step === "pointer read" ? "GET" : "PUT";
    const createdAt = "2026-01-01T00:00:02.000Z";
    let manifest: EpisodeManifest | undefined;
    proxy.fail({ method, key, fault, times: Infinity });
    const before = proxy.faulted().length;
    const attempt = async () => {
      manifest ??= await writeVersion(store, conversation, "v2", 20, createdAt);
      return store.publish(manifest);
    };
    expect(await codeOf(attempt())).toBe("store_unavailable");
    expect(proxy.faulted().length).toBeGreaterThan(before);

    const survey = await surveyConversation(direct, TENANT, conversation);
    expect(survey.problems).toEqual([]);
    // Only a pointer write the store carried out (its answer lost) can have moved the pointer.
    const landed =
      step === "pointer" &&
      fault.kind !== "status" &&
      (fault as { when?: string }).when === "after";
    if (landed) expect(["v1", "v2"]).toContain(survey.active);
    else expect(survey.active).toBe("v1");
    if (step === "blob") expect(survey.manifests).toEqual(["v1"]);
    if (survey.active === "v1")
      await expectServing(new EpisodeStore(direct), conversation, "v1", [10, 11]);

    proxy.clear();
    expect(await attempt()).toEqual({ active: "v2", moved: true });
    await expectServing(store, conversation, "v2", [20, 21]);
    expect((await surveyConversation(direct, TENANT, conversation)).problems).toEqual([]);
  }

  for (const step of ["blob", "manifest", "pointer", "pointer read"] as const) {
    for (const [name, fault] of FAULTS) {
      if (step === "pointer read" && fault.kind === "delay" && fault.when === "after") continue; // a read: same as before
      test(`a publish whose ${step} ${step.endsWith("read") ? "" : "write "}meets ${name} fails as store_unavailable, v1 serves, then a retry publishes`, () =>
        publishThrough(step, fault));
    }
  }

  test("one transient fault per request is absorbed by the client's retry", async () => {
    const { conversation, store } = await withV1();
    const rules: Array<[string, RegExp, Fault]> = [
      ["PUT", /v2\/episode-0\.kvc$/, { kind: "status", status: 500 }],
      ["PUT", /v2\/episode-1\.kvc$/, { kind: "reset", when: "after" }],
      ["PUT", /v2\/manifest\.json$/, { kind: "status", status: 503 }],
      ["GET", /active\.json$/, { kind: "delay", ms: 2.5 * TIMEOUT_MS, when: "before" }],
      ["PUT", /active\.json$/, { kind: "reset", when: "after" }],
    ];
    for (const [method, key, fault] of rules)
      proxy.fail({ method, key: new RegExp(`/${conversation}/.*${key.source}`), fault });
    const manifest = await writeVersion(store, conversation, "v2", 20, "2026-01-01T00:00:02.000Z");
    expect(await store.publish(manifest)).toEqual({ active: "v2", moved: true });
    expect(proxy.faulted().filter((r) => r.key.includes(`/${conversation}/`))).toHaveLength(
      rules.length,
    );
    await expectServing(store, conversation, "v2", [20, 21]);
  });

  test("a manifest write whose answer is lost, retried by the client, still publishes (it finds its own manifest)", async () => {
    const { conversation, store } = await withV1();
    const manifest = await writeVersion(store, conversation, "v2", 20, "2026-01-01T00:00:02.000Z");
    proxy.fail({ method: "PUT", key: /manifest\.json$/, fault: { kind: "reset", when: "after" } });
    expect(await store.publish(manifest)).toEqual({ active: "v2", moved: true });
    expect(proxy.faulted().filter((r) => r.key.includes(`/${conversation}/`))).toHaveLength(1);
    // A different manifest for a published version is still refused.
    expect(await codeOf(store.publish({ ...manifest, contextTokens: 4 }))).toBe("store_conflict");
  });

  describe("loading an episode", () => {
    const cases: Array<[string, Fault, string]> = [
      ["a body cut short", { kind: "truncate", bytes: 100 }, "store_unavailable"],
      ["a body cut after its header", { kind: "truncate", bytes: 8 }, "store_unavailable"],
      ["a corrupted byte in the data", { kind: "corrupt", at: 200 }, "store_invalid"],
      ["a corrupted byte in the header", { kind: "corrupt", at: 6 }, "store_invalid"],
      ["a corrupted last byte", { kind: "corrupt", at: 1 << 30 }, "store_invalid"],
      ["503s", { kind: "status", status: 503 }, "store_unavailable"],
      ["500s", { kind: "status", status: 500 }, "store_unavailable"],
      ["resets", { kind: "reset", when: "before" }, "store_unavailable"],
      [
        "answers held past the timeout",
        { kind: "delay", ms: 2.5 * TIMEOUT_MS, when: "after" },
        "store_unavailable",
      ],
    ];
    for (const [name, fault, code] of cases) {
      test(`${name}: ${code}, never a cache; the next load, once it clears, is whole`, async () => {
        const { conversation, store } = await withV1();
        const manifest = await store.resolve(TENANT, conversation);
        const loaded = new LoadedEpisodes(store, 1 << 20);
        proxy.fail({ method: "GET", key: /episode-1\.kvc$/, fault, times: Infinity });
        expect(await codeOf(store.loadEpisode(manifest, 1))).toBe(code);
        expect(await codeOf(loaded.get(manifest, 1))).toBe(code);
        expect(loaded.stats.entries).toBe(0);
        proxy.clear();
        const cache = await loaded.get(manifest, 1);
        expect(markOf(cache)).toBe(11);
        expect(cache.entries).toBe(markedCache(11).entries);
        expect(cache.nextPosition).toBe(markedCache(11).nextPosition);
      });
    }

    const reads: Array<[string, RegExp, Fault, string]> = [
      ["a corrupted active pointer", /active\.json$/, { kind: "corrupt", at: 0 }, "store_invalid"],
      [
        "an active pointer cut short",
        /active\.json$/,
        { kind: "truncate", bytes: 10 },
        "store_unavailable",
      ],
      ["a corrupted manifest", /manifest\.json$/, { kind: "corrupt", at: 0 }, "store_invalid"],
      [
        "a manifest cut short",
        /manifest\.json$/,
        { kind: "truncate", bytes: 10 },
        "store_unavailable",
      ],
      [
        "a manifest read answered 503",
        /manifest\.json$/,
        { kind: "status", status: 503 },
        "store_unavailable",
      ],
    ];
    for (const [name, key, fault, code] of reads) {
      test(`resolving through ${name}: ${code}; once it clears, the version resolves`, async () => {
        const { conversation, store } = await withV1();
        proxy.fail({ method: "GET", key, fault, times: Infinity });
        expect(await codeOf(store.resolve(TENANT, conversation))).toBe(code);
        proxy.clear();
        await expectServing(store, conversation, "v1", [10, 11]);
      });
    }
  });
});

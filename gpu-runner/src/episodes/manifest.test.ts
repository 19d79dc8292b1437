import { describe, expect, it } from "vitest";
import { findModel, pinnedFingerprint } from "../model-registry";
import { encodeWindowVectors, routeQuestion } from "@epicache/shared";
import {
  MANIFEST_FORMAT,
  MANIFEST_FORMAT_2,
  MANIFEST_FORMAT_3,
  manifestRouting,
  parseManifest,
  type EpisodeManifest,
} from "./manifest";

const shape = { numerics: "fast", layers: 2, kvHeads: 1, headDim: 4 };
const manifest: EpisodeManifest = {
  format: MANIFEST_FORMAT,
  tenant: "t",
  conversation: "c",
  version: "v1",
  model: { id: "mine.gguf", fingerprint: "0123456789abcdef", ...shape },
  embedder: { modelId: "e", dimension: 2 },
  method: "epicache",
  budget: 8,
  block: 16,
  layerBudgets: [8, 8],
  contextTokens: 20,
  dtype: "f16",
  routing: { rule: "centroid" },
  episodes: [
    {
      id: 0,
      key: "k0",
      bytes: 10,
      sha256: "s",
      centroid: [1, 0],
      windows: [0],
      representatives: [0],
      entries: 16,
    },
  ],
  createdAt: "2026-01-01T00:00:00.000Z",
};

function codeOf(f: () => unknown): string {
  try {
    f();
    return "ok";
  } catch (e) {
    return (e as { code?: string }).code ?? String(e);
  }
}

describe("parseManifest", () => {
  it("reads what a build writes: the model by id and fingerprint, no path", () => {
    expect(MANIFEST_FORMAT).toBe("epicache-episodes/4");
    expect(parseManifest(JSON.stringify(manifest), "m")).toEqual(manifest);
  });

  it("refuses a manifest whose model has no id, or of an unknown format", () => {
    const { id: _, ...noId } = manifest.model;
    expect(codeOf(() => parseManifest(JSON.stringify({ ...manifest, model: noId }), "m"))).toBe(
      "store_invalid",
    );
    expect(
      codeOf(() =>
        parseManifest(JSON.stringify({ ...manifest, format: "epicache-episodes/1" }), "m"),
      ),
    ).toBe("store_invalid");
  });

  it("still reads a /2 manifest, dropping the builder's path: a registered model by its registry id, any other by its file name", () => {
    const chat = findModel("chat");
    const fingerprint = chat && pinnedFingerprint(chat);
    if (!chat || !fingerprint) throw new Error("the registry has no chat GGUF");
    const { routing: _, ...unrouted } = manifest;
    const v2 = (path: string, fp: string) =>
      JSON.stringify({
        ...unrouted,
        format: MANIFEST_FORMAT_2,
        model: { path, fingerprint: fp, ...shape },
      });
    const registered = parseManifest(
      v2("/home/builder/.epicache/models/x/SmolLM2.gguf", fingerprint),
      "m",
    );
    expect(registered.model).toEqual({ id: chat.id, fingerprint, ...shape });
    expect(registered.format).toBe(MANIFEST_FORMAT_2);
    expect(parseManifest(v2("/srv/models/mine.gguf", "0123456789abcdef"), "m").model).toEqual(
      manifest.model,
    );
  });

  it("reads /3 and /2 manifests, which have no routing, as routed by centroid", () => {
    const { routing: _, ...unrouted } = manifest;
    const v3 = parseManifest(JSON.stringify({ ...unrouted, format: MANIFEST_FORMAT_3 }), "m");
    expect(v3.routing).toEqual({ rule: "centroid" });
    expect(manifestRouting(v3)).toEqual({
      rule: { rule: "centroid" },
      data: { centroids: [[1, 0]] },
    });
  });
});

describe("routing in the manifest", () => {
  // Two episodes over three windows: window 1 is episode 0's, windows 0 and 2 episode 1's.
  const windowVectors = encodeWindowVectors([
    [0, 1],
    [1, 0],
    [0.6, 0.8],
  ]);
  const episode = (id: number, centroid: number[], windows: number[]) => ({
    id,
    key: `k${id}`,
    bytes: 10,
    sha256: "s",
    centroid,
    windows,
    representatives: windows.slice(0, 1),
    entries: 16,
  });
  const routed = (
    routing: unknown,
    episodes = [episode(0, [1, 0], [1]), episode(1, [0, 1], [0, 2])],
  ) => JSON.stringify({ ...manifest, routing, episodes });

  it("reads a window manifest: each window's episode from the episodes' windows, vectors as int8", () => {
    const m = parseManifest(routed({ rule: "window", windowVectors }), "m");
    const { rule, data } = manifestRouting(m);
    expect(rule).toEqual({ rule: "window" });
    expect(data.windowEpisodes).toEqual([1, 0, 1]);
    expect(data.windows?.map((v) => Array.from(v))).toEqual([
      [0, 127],
      [127, 0],
      [95, 127],
    ]);
    // [0.6, 0.8] is nearest window 2 (episode 1); [1, 0.1] nearest window 1 (episode 0).
    expect(routeQuestion(rule, { vector: [0.6, 0.8], text: "" }, data).episode).toBe(1);
    expect(routeQuestion(rule, { vector: [1, 0.1], text: "" }, data).episode).toBe(0);
  });

  it("reads a lexical manifest: each window's terms from its string, the vectors kept for questions without a matching term", () => {
    const m = parseManifest(
      routed({ rule: "lexical", windowVectors, windowTerms: ["pottery clas", "dog vet", ""] }),
      "m",
    );
    const { rule, data } = manifestRouting(m);
    expect(rule).toEqual({ rule: "lexical" });
    expect(data.windowTerms).toEqual([["pottery", "clas"], ["dog", "vet"], []]);
    expect(data.windowEpisodes).toEqual([1, 0, 1]);
    // "pottery" is window 0's (episode 1), "vet" window 1's (episode 0); no term: nearest window 1.
    expect(
      routeQuestion(rule, { vector: [1, 0.1], text: "Who teaches the pottery class?" }, data),
    ).toMatchObject({ episode: 1, scoredBy: "lexical" });
    expect(
      routeQuestion(rule, { vector: [0.6, 0.8], text: "What did the vet say?" }, data),
    ).toMatchObject({ episode: 0, scoredBy: "lexical" });
    expect(routeQuestion(rule, { vector: [1, 0.1], text: "What is it?" }, data)).toMatchObject({
      episode: 0,
      scoredBy: "window",
    });
  });

  it("reads a vote manifest with its k", () => {
    const { rule } = manifestRouting(
      parseManifest(routed({ rule: "vote", k: 3, windowVectors }), "m"),
    );
    expect(rule).toEqual({ rule: "vote", k: 3 });
  });

  it("refuses routing it cannot route by", () => {
    const cases: [string, string][] = [
      [
        JSON.stringify({ ...manifest, routing: undefined }),
        "m: routing undefined has no rule of centroid, window, vote, lexical",
      ],
      [
        routed({ rule: "nearest" }),
        'm: routing {"rule":"nearest"} has no rule of centroid, window, vote, lexical',
      ],
      [routed({ rule: "lexical", windowVectors }), "m: lexical routing has no window terms"],
      [
        routed({ rule: "lexical", windowVectors, windowTerms: ["a", 1, "b"] }),
        "m: lexical routing has no window terms",
      ],
      [
        routed({ rule: "lexical", windowVectors, windowTerms: ["a", "b"] }),
        "m: lexical routing has 2 windows' terms for 3 window vectors",
      ],
      [
        routed({ rule: "vote", k: 0, windowVectors }),
        "m: vote routing needs a positive integer k, not 0",
      ],
      [routed({ rule: "window" }), "m: window routing has no window vectors"],
      [
        routed({ rule: "window", windowVectors: "AAAA" }),
        "m: window vectors hold 3 bytes, not a multiple of the dimension 2",
      ],
      [
        routed({ rule: "window", windowVectors }, [
          episode(0, [1, 0], [1, 3]),
          episode(1, [0, 1], [0, 2]),
        ]),
        "m: episode 0 lists window 3, beyond the 3 window vectors",
      ],
      [
        routed({ rule: "window", windowVectors }, [
          episode(0, [1, 0], [1, 0]),
          episode(1, [0, 1], [0, 2]),
        ]),
        "m: episode 1 lists window 0, listed twice",
      ],
      [
        routed({ rule: "window", windowVectors }, [
          episode(0, [1, 0], [1]),
          episode(1, [0, 1], [0]),
        ]),
        "m: window 2 is in no episode",
      ],
    ];
    for (const [text, message] of cases) {
      let error: unknown;
      try {
        parseManifest(text, "m");
      } catch (e) {
        error = e;
      }
      expect(error).toMatchObject({ code: "store_invalid", message });
    }
  });
});

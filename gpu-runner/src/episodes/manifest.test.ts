import { describe, expect, it } from "vitest";
import { findModel, pinnedFingerprint } from "../models";
import { MANIFEST_FORMAT, MANIFEST_FORMAT_2, parseManifest, type EpisodeManifest } from "./manifest";

const shape = { numerics: "fast", layers: 2, kvHeads: 1, headDim: 4 };
const manifest: EpisodeManifest = {
  format: MANIFEST_FORMAT, tenant: "t", conversation: "c", version: "v1",
  model: { id: "mine.gguf", fingerprint: "0123456789abcdef", ...shape },
  embedder: { modelId: "e", dimension: 2 }, method: "epicache", budget: 8, block: 16, layerBudgets: [8, 8], contextTokens: 20, dtype: "f16",
  episodes: [{ id: 0, key: "k0", bytes: 10, sha256: "s", centroid: [1, 0], windows: [0], representatives: [0], entries: 16 }],
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
    expect(MANIFEST_FORMAT).toBe("epicache-episodes/3");
    expect(parseManifest(JSON.stringify(manifest), "m")).toEqual(manifest);
  });

  it("refuses a manifest whose model has no id, or of an unknown format", () => {
    const { id: _, ...noId } = manifest.model;
    expect(codeOf(() => parseManifest(JSON.stringify({ ...manifest, model: noId }), "m"))).toBe("store_invalid");
    expect(codeOf(() => parseManifest(JSON.stringify({ ...manifest, format: "epicache-episodes/1" }), "m"))).toBe("store_invalid");
  });

  it("still reads a /2 manifest, dropping the builder's path: a registered model by its registry id, any other by its file name", () => {
    const chat = findModel("chat");
    const fingerprint = chat && pinnedFingerprint(chat);
    if (!chat || !fingerprint) throw new Error("the registry has no chat GGUF");
    const v2 = (path: string, fp: string) => JSON.stringify({ ...manifest, format: MANIFEST_FORMAT_2, model: { path, fingerprint: fp, ...shape } });
    const registered = parseManifest(v2("/home/builder/.epicache/models/x/SmolLM2.gguf", fingerprint), "m");
    expect(registered.model).toEqual({ id: chat.id, fingerprint, ...shape });
    expect(registered.format).toBe(MANIFEST_FORMAT_2);
    expect(parseManifest(v2("/srv/models/mine.gguf", "0123456789abcdef"), "m").model).toEqual(manifest.model);
  });
});

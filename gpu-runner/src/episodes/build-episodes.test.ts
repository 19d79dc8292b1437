import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadJsonl, nearestCentroid } from "@epicache/shared";
import { openEmbedder, type OnnxEmbedder } from "../embedder";
import { openChatModel, type ChatModel } from "../model";
import { NEEDS_PULL, pulledModel, tinyGguf } from "../testing";
import { askEpisodes } from "./ask-episodes";
import { buildEpisodes } from "./build-episodes";
import { EpisodeStore } from "./episode-store";
import { FsObjectStore } from "../store";
import { QUESTION_ROOM } from "../prefill";

const embedderPath = pulledModel("embedder");
const dir = mkdtempSync(join(tmpdir(), "epicache-episodes-"));

// Two topics, interleaved in time, so that episodes are not just halves of the history.
const topics = [
  ["I adopted a puppy named Biscuit last week.", "Biscuit chewed my shoes again, such a naughty dog.", "The vet said Biscuit needs his vaccines soon.", "We walked the dog by the river this morning."],
  ["My pottery class starts on Tuesday evenings.", "I glazed my first ceramic bowl at the studio.", "The kiln fired my vase and it cracked, sadly.", "I want to try throwing clay on the wheel next."],
];
const lines: string[] = [];
for (let s = 0; s < 4; s++) {
  for (let t = 0; t < 8; t++) {
    const topic = topics[Math.floor(t / 4) % 2 === s % 2 ? 0 : 1];
    lines.push(JSON.stringify({ speaker: t % 2 ? "Ana" : "Ben", text: topic[t % 4], session: `s${s}`, timestamp: `2024-0${s + 1}-01` }));
  }
}
const { conversation } = loadJsonl(lines.join("\n"), { id: "pets-and-pottery" });

describe.skipIf(!embedderPath)(`episodes end to end on a tiny chat model ${NEEDS_PULL}`, () => {
  let model: ChatModel;
  let embedder: OnnxEmbedder;
  beforeAll(async () => {
    const path = join(dir, "tiny.gguf");
    writeFileSync(path, tinyGguf({ architecture: "llama", numLayers: 3, seed: 5 }).bytes);
    model = await openChatModel(path, { graphRoot: join(dir, "graphs"), numerics: "exact" });
    embedder = await openEmbedder(embedderPath);
  });
  afterAll(async () => {
    await model?.decoder.release();
    await embedder?.release();
    rmSync(dir, { recursive: true, force: true });
  });

  it("builds one cache per episode within the layer budgets, manifest last, and answers from the nearest one", async () => {
    const store = new EpisodeStore(new FsObjectStore(join(dir, "store")));
    const budget = 48;
    const at = { store, tenant: "local", conversation: "pets", version: "v1", dtype: "f32" as const };
    const report = await buildEpisodes(model, embedder, conversation, at, { method: "epicache", episodes: 2, budget, blockSize: 64, alloc: "output" });
    expect(report.published).toEqual({ active: "v1", moved: true });
    const m = await store.resolve("local", "pets");
    expect(m).toEqual(report.manifest);
    expect(m.episodes).toHaveLength(2);
    expect(m.layerBudgets?.reduce((a, b) => a + b, 0)).toBe(budget * model.config.numLayers);
    // The layer profile at this budget was measured (none existed) and saved next to the model.
    const profiles = JSON.parse(readFileSync(join(dir, `epicache-layer-profiles-${model.fingerprint}.json`), "utf8"));
    expect(Object.keys(profiles.profiles)).toEqual([`output@${budget}`]);
    for (const e of m.episodes) {
      const cache = await store.loadEpisode(m, e.id);
      // Compact positions: the history (1,796 tokens) leaves the tiny model's 2,048-token window too
      // little room for a question, so the cache was compacted to leave it.
      expect(m.positions).toBe("compact");
      expect(cache.nextPosition + QUESTION_ROOM).toBeLessThanOrEqual(model.config.contextLength);
      expect(report.positions.max).toBeLessThan(report.positions.window);
      cache.layers.forEach((layer, l) => {
        const sum = layer.lengths.reduce((a, b) => a + b, 0);
        expect(sum).toBeLessThanOrEqual((m.layerBudgets as number[])[l] * model.config.numKvHeads);
        expect(report.entries[l][e.id]).toBe(sum);
      });
      expect(e.representatives.every((r) => e.windows.includes(r))).toBe(true);
    }
    expect(m.episodes.flatMap((e) => e.windows).sort((a, b) => a - b)).toEqual(Array.from({ length: 8 }, (_, i) => i));

    const question = "What did the vet say about the dog?";
    const before = (await store.objects.get(m.episodes[0].key)).bytes;
    const answer = await askEpisodes(model, embedder, store, m, question, { maxTokens: 4 });
    expect(answer.version).toBe("v1");
    const [q] = await embedder.embed([question]);
    expect(answer.episode).toBe(nearestCentroid(q, m.episodes.map((e) => e.centroid)).index);
    expect(answer.cosines[answer.episode]).toBe(Math.max(...answer.cosines));
    expect(typeof answer.answer).toBe("string");
    // Asking does not touch the stored caches.
    expect(Buffer.compare((await store.objects.get(m.episodes[0].key)).bytes, before)).toBe(0);
  });

  it("builds a single cache for a baseline and refuses to answer with another model", async () => {
    const store = new EpisodeStore(new FsObjectStore(join(dir, "snapkv")));
    const { manifest: m } = await buildEpisodes(model, embedder, conversation, { store, tenant: "local", conversation: "pets", version: "v1" }, { method: "snapkv", budget: 32, blockSize: 32 });
    expect(m.dtype).toBe("f16");
    expect(m.episodes).toHaveLength(1);
    expect(m.layerBudgets).toEqual(Array(model.config.numLayers).fill(32));
    const other = join(dir, "other.gguf");
    writeFileSync(other, tinyGguf({ architecture: "llama", numLayers: 3, seed: 6 }).bytes);
    const otherModel = await openChatModel(other, { graphRoot: join(dir, "graphs"), numerics: "exact" });
    try {
      await expect(askEpisodes(otherModel, embedder, store, m, "hi?")).rejects.toMatchObject({ code: "model_mismatch" });
      expect(m.model.id).toBe("tiny.gguf");
    } finally {
      await otherModel.decoder.release();
    }
    await expect(new EpisodeStore(new FsObjectStore(join(dir, "nowhere"))).resolve("local", "pets")).rejects.toMatchObject({ code: "store_not_found" });
  });
});

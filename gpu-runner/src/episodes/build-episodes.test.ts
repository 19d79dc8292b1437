import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  bm25Scores,
  cosine,
  decodeWindowVectors,
  lexicalTerms,
  loadJsonl,
  segmentWindows,
} from "@epicache/shared";
import { openEmbedder, type OnnxEmbedder } from "../embedder";
import { openChatModel, type ChatModel } from "../runtime";
import { NEEDS_PULL, pulledModel, tinyGguf } from "../testing";
import { askEpisodes } from "./ask-episodes";
import { buildEpisodes } from "./build-episodes";
import { EpisodeStore } from "./episode-store";
import { FsObjectStore } from "../store";
import { evictionFreeTokens, QUESTION_ROOM } from "../prefill";

const embedderPath = pulledModel("embedder");
const dir = mkdtempSync(join(tmpdir(), "epicache-episodes-"));

// Two topics, interleaved in time, so that episodes are not just halves of the history.
const topics = [
  [
    "I adopted a puppy named Biscuit last week.",
    "Biscuit chewed my shoes again, such a naughty dog.",
    "The vet said Biscuit needs his vaccines soon.",
    "We walked the dog by the river this morning.",
  ],
  [
    "My pottery class starts on Tuesday evenings.",
    "I glazed my first ceramic bowl at the studio.",
    "The kiln fired my vase and it cracked, sadly.",
    "I want to try throwing clay on the wheel next.",
  ],
];
const lines: string[] = [];
for (let s = 0; s < 4; s++) {
  for (let t = 0; t < 8; t++) {
    const topic = topics[Math.floor(t / 4) % 2 === s % 2 ? 0 : 1];
    lines.push(
      JSON.stringify({
        speaker: t % 2 ? "Ana" : "Ben",
        text: topic[t % 4],
        session: `s${s}`,
        timestamp: `2024-0${s + 1}-01`,
      }),
    );
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

  it("builds one cache per episode within the layer budgets, manifest last, and answers from the episode of the window best matching the question's words", async () => {
    const store = new EpisodeStore(new FsObjectStore(join(dir, "store")));
    const budget = 48;
    const at = {
      store,
      tenant: "local",
      conversation: "pets",
      version: "v1",
      dtype: "f32" as const,
    };
    const report = await buildEpisodes(model, embedder, conversation, at, {
      method: "epicache",
      episodes: 2,
      budget,
      blockSize: 64,
      alloc: "output",
    });
    expect(report.published).toEqual({ active: "v1", moved: true });
    const m = await store.resolve("local", "pets");
    expect(m).toEqual(report.manifest);
    expect(m.episodes).toHaveLength(2);
    expect(m.layerBudgets?.reduce((a, b) => a + b, 0)).toBe(budget * model.config.numLayers);
    // The layer profile at this budget was measured (none existed) and saved next to the model.
    const profiles = JSON.parse(
      readFileSync(join(dir, `epicache-layer-profiles-${model.fingerprint}.json`), "utf8"),
    );
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
    expect(m.episodes.flatMap((e) => e.windows).sort((a, b) => a - b)).toEqual(
      Array.from({ length: 8 }, (_, i) => i),
    );

    const question = "What did the vet say about the dog?";
    const before = (await store.objects.get(m.episodes[0].key)).bytes;
    const answer = await askEpisodes(model, embedder, store, m, question, { maxTokens: 4 });
    expect(answer.version).toBe("v1");
    // The default rule, lexical: the manifest holds every window's terms, and the question goes to the
    // episode that lists the window scoring highest by BM25 ("vet" and "dog" are in the pet windows).
    const terms = segmentWindows(conversation).map((w) => lexicalTerms(w.text));
    expect(m.routing).toMatchObject({
      rule: "lexical",
      windowTerms: terms.map((t) => t.join(" ")),
    });
    expect(answer).toMatchObject({ rule: { rule: "lexical" }, scoredBy: "lexical" });
    const scores = Array.from(bm25Scores(lexicalTerms(question), terms));
    expect(answer.episode).toBe(
      m.episodes.findIndex((e) => e.windows.includes(scores.indexOf(Math.max(...scores)))),
    );
    expect(answer.scores[answer.episode]).toBe(Math.max(...answer.scores));
    expect(typeof answer.answer).toBe("string");
    // Asking does not touch the stored caches.
    expect(Buffer.compare((await store.objects.get(m.episodes[0].key)).bytes, before)).toBe(0);
  });

  it("prefills the blocks that evict nothing once for all episodes: each cache is the one its prompt builds alone", async () => {
    const store = new EpisodeStore(new FsObjectStore(join(dir, "store-shared")));
    const options = {
      method: "epicache" as const,
      budget: 150,
      blockSize: 64,
      alloc: "uniform" as const,
    };
    const at = (version: string) => ({
      store,
      tenant: "local",
      conversation: "pets",
      version,
      dtype: "f32" as const,
    });
    const progress: Array<[number, number, number]> = [];
    const { manifest } = await buildEpisodes(model, embedder, conversation, at("both"), {
      ...options,
      episodes: 2,
      onProgress: ({ episode, block, blocks }) => progress.push([episode, block, blocks]),
    });
    expect(evictionFreeTokens(manifest.contextTokens, 64, manifest.layerBudgets ?? [])).toBe(128);
    // Episode 0 prefills the two shared blocks; episode 1 starts from them.
    const blocks = Math.ceil(manifest.contextTokens / 64);
    expect(progress.filter(([e]) => e === 0).map(([, b]) => b)).toEqual(
      Array.from({ length: blocks }, (_, i) => i + 1),
    );
    expect(progress.filter(([e]) => e === 1).map(([, b]) => b)).toEqual(
      Array.from({ length: blocks - 1 }, (_, i) => i + 2),
    );
    expect(progress.every(([, , n]) => n === blocks)).toBe(true);
    const prompts = manifest.update?.episodes.map((e) => e.prompt) ?? [];
    expect(new Set(prompts).size).toBe(2);
    for (const [e, prompt] of prompts.entries()) {
      const alone = await buildEpisodes(model, embedder, conversation, at(`alone${e}`), {
        ...options,
        prompts: [prompt],
      });
      const a = await store.loadEpisode(manifest, e);
      const b = await store.loadEpisode(alone.manifest, 0);
      expect(a.nextPosition).toBe(b.nextPosition);
      a.layers.forEach((layer, l) => {
        const other = b.layers[l];
        expect(layer.lengths, `layer ${l}`).toEqual(other.lengths);
        expect(layer.positions).toEqual(other.positions);
        expect(layer.keys).toEqual(other.keys);
        expect(layer.values).toEqual(other.values);
      });
    }
  });

  it("builds a single cache for a baseline and refuses to answer with another model", async () => {
    const store = new EpisodeStore(new FsObjectStore(join(dir, "snapkv")));
    const { manifest: m } = await buildEpisodes(
      model,
      embedder,
      conversation,
      { store, tenant: "local", conversation: "pets", version: "v1" },
      { method: "snapkv", budget: 32, blockSize: 32 },
    );
    expect(m.dtype).toBe("f16");
    expect(m.episodes).toHaveLength(1);
    // One cache: nothing to route between, so no window vectors whatever the rule.
    expect(m.routing).toEqual({ rule: "centroid" });
    expect(m.layerBudgets).toEqual(Array(model.config.numLayers).fill(32));
    const other = join(dir, "other.gguf");
    writeFileSync(other, tinyGguf({ architecture: "llama", numLayers: 3, seed: 6 }).bytes);
    const otherModel = await openChatModel(other, {
      graphRoot: join(dir, "graphs"),
      numerics: "exact",
    });
    try {
      await expect(askEpisodes(otherModel, embedder, store, m, "hi?")).rejects.toMatchObject({
        code: "model_mismatch",
      });
      expect(m.model.id).toBe("tiny.gguf");
    } finally {
      await otherModel.decoder.release();
    }
    await expect(
      new EpisodeStore(new FsObjectStore(join(dir, "nowhere"))).resolve("local", "pets"),
    ).rejects.toMatchObject({ code: "store_not_found" });
  });

  it("records the routing rule asked for: centroid without window vectors, vote with its k and int8 window vectors, window answering from the nearest window's episode", async () => {
    const store = new EpisodeStore(new FsObjectStore(join(dir, "routing")));
    const build = (version: string, routing: Parameters<typeof buildEpisodes>[4]["routing"]) =>
      buildEpisodes(
        model,
        embedder,
        conversation,
        { store, tenant: "local", conversation: "pets", version, publish: false },
        { method: "epicache", episodes: 2, budget: 32, blockSize: 64, alloc: "uniform", routing },
      );
    expect((await build("c", { rule: "centroid" })).manifest.routing).toEqual({ rule: "centroid" });
    const { manifest: w } = await build("w", { rule: "window" });
    expect(w.routing.rule).toBe("window");
    expect(w.routing).not.toHaveProperty("windowTerms");
    const question = "What did the vet say about the dog?";
    const answer = await askEpisodes(model, embedder, store, w, question, { maxTokens: 1 });
    expect(answer).toMatchObject({ rule: { rule: "window" }, scoredBy: "window" });
    const [q] = await embedder.embed([question]);
    const cosines = (await embedder.embed(segmentWindows(conversation).map((x) => x.text))).map(
      (x) => cosine(q, x),
    );
    expect(answer.episode).toBe(
      w.episodes.findIndex((e) => e.windows.includes(cosines.indexOf(Math.max(...cosines)))),
    );
    const { routing } = (await build("v", { rule: "vote", k: 3 })).manifest;
    if (routing.rule !== "vote") throw new Error(`routing ${routing.rule}`);
    expect(routing.k).toBe(3);
    const stored = decodeWindowVectors(routing.windowVectors, embedder.dimension);
    const vectors = await embedder.embed(segmentWindows(conversation).map((w) => w.text));
    expect(stored).toHaveLength(vectors.length);
    stored.forEach((v, i) =>
      expect(cosine(Float32Array.from(v), vectors[i])).toBeGreaterThan(0.999),
    );
    await expect(build("x", { rule: "vote", k: 0 })).rejects.toMatchObject({
      code: "invalid_argument",
      message: "vote routing needs a positive integer k, got 0",
    });
  });
});

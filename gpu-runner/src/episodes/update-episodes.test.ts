import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { conversationFromMessages, type Message } from "@epicache/shared";
import { openEmbedder, type OnnxEmbedder } from "../embedder";
import { openChatModel, type ChatModel } from "../runtime";
import { FsObjectStore } from "../store";
import { NEEDS_PULL, pulledModel, tinyGguf } from "../testing";
import { buildEpisodes } from "./build-episodes";
import { EpisodeStore } from "./episode-store";
import { rebuildOptions } from "./build-episodes";
import { updateEpisodes } from "./update-episodes";
import { updateOrBuild } from "./update-or-build";

const embedderPath = pulledModel("embedder");
const dir = mkdtempSync(join(tmpdir(), "epicache-update-"));

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
// Five sessions of 7 turns: windows of 4 do not line up with sessions, so updates complete a window.
const messages: Message[] = [];
for (let s = 0; s < 5; s++) {
  for (let t = 0; t < 7; t++) {
    messages.push({
      speaker: t % 2 ? "Ana" : "Ben",
      text: topics[(s + Math.floor(t / 4)) % 2][t % 4],
      session: `s${s}`,
      timestamp: `2024-0${s + 1}-01`,
    });
  }
}

describe.skipIf(!embedderPath)(`updates on a tiny chat model ${NEEDS_PULL}`, () => {
  let model: ChatModel;
  let embedder: OnnxEmbedder;
  let store: EpisodeStore;
  beforeAll(async () => {
    const path = join(dir, "tiny.gguf");
    writeFileSync(path, tinyGguf({ architecture: "llama", numLayers: 2, seed: 5 }).bytes);
    model = await openChatModel(path, { graphRoot: join(dir, "graphs"), numerics: "exact" });
    embedder = await openEmbedder(embedderPath);
    store = new EpisodeStore(new FsObjectStore(join(dir, "store")));
  });
  afterAll(async () => {
    await model?.decoder.release();
    await embedder?.release();
    rmSync(dir, { recursive: true, force: true });
  });

  const options = {
    method: "epicache" as const,
    episodes: 2,
    budget: 24,
    blockSize: 32,
    alloc: "uniform" as const,
    nMedoid: 1,
  };
  const at = (version: string) => ({
    store,
    tenant: "t",
    conversation: "c",
    version,
    dtype: "f32" as const,
  });

  it("a build of the first sessions then an update with the rest gives the caches of one build breaking where the first ended", async () => {
    // Split inside session 3 (the update continues it) and after an unfinished window (17 turns).
    const head = messages.slice(0, 17);
    const { conversation, cursor } = conversationFromMessages("c", head);
    const base = await buildEpisodes(model, embedder, conversation, at("v1"), {
      ...options,
      cursor,
    });
    expect(base.manifest.update).toMatchObject({
      kind: "full",
      turns: 17,
      cursor: { key: "s2", index: 3, turns: 3 },
    });
    expect(base.manifest.update?.tail?.lines).toHaveLength(1);

    const updated = await updateEpisodes(
      model,
      embedder,
      base.manifest,
      messages.slice(17),
      at("v2"),
      { regrowth: 10 },
    );
    const m = updated.manifest;
    expect(m.update).toMatchObject({
      kind: "incremental",
      baseVersion: "v1",
      turns: 35,
      lastTurnId: "D5:7",
      tail: { lines: expect.any(Array) },
    });
    expect(m.episodes.flatMap((e) => e.windows).sort((a, b) => a - b)).toEqual(
      Array.from({ length: 9 }, (_, i) => i),
    );

    expect(updated.positions.max).toBeLessThan(updated.positions.window);

    // One build of everything, its blocks breaking where the base ended, the base's prompts held fixed.
    const whole = conversationFromMessages("c", messages).conversation;
    const once = await buildEpisodes(model, embedder, whole, at("v3"), {
      ...options,
      breaks: [base.manifest.contextTokens],
      prompts: base.manifest.update?.episodes.map((e) => e.prompt),
    });
    expect(m.contextTokens).toBe(once.manifest.contextTokens);
    // The routing data grows with the windows: the default rule, lexical, has every window's terms.
    expect(m.routing.rule).toBe("lexical");
    if (m.routing.rule === "lexical" && once.manifest.routing.rule === "lexical")
      expect(m.routing.windowTerms).toEqual(once.manifest.routing.windowTerms);
    for (let e = 0; e < m.episodes.length; e++) {
      const [a, b] = [await store.loadEpisode(m, e), await store.loadEpisode(once.manifest, e)];
      expect(a.nextPosition).toBe(b.nextPosition);
      a.layers.forEach((layer, l) => {
        const other = b.layers[l];
        expect(Array.from(layer.lengths)).toEqual(Array.from(other.lengths));
        for (let h = 0; h < layer.lengths.length; h++) {
          const n = layer.lengths[h];
          const slice = (x: Float32Array | Int32Array, cap: number, width: number) =>
            Array.from(x.subarray(h * cap * width, (h * cap + n) * width));
          expect(slice(layer.positions, layer.capacity, 1)).toEqual(
            slice(other.positions, other.capacity, 1),
          );
          expect(slice(layer.keys, layer.capacity, model.config.headDim)).toEqual(
            slice(other.keys, other.capacity, model.config.headDim),
          );
          expect(slice(layer.values, layer.capacity, model.config.headDim)).toEqual(
            slice(other.values, other.capacity, model.config.headDim),
          );
        }
      });
    }
  });

  it("refuses what only a full build can do, saying why", async () => {
    const head = messages.slice(0, 14);
    const { conversation, cursor } = conversationFromMessages("c", head);
    const base = (
      await buildEpisodes(model, embedder, conversation, at("v4"), { ...options, cursor })
    ).manifest;
    const refused = (reason: RegExp) =>
      expect.objectContaining({ code: "base_unusable", message: expect.stringMatching(reason) });
    await expect(
      updateEpisodes(model, embedder, base, [{ speaker: "Cleo", text: "Hi all!" }], at("v5")),
    ).rejects.toEqual(refused(/new speaker, Cleo/));
    await expect(
      updateEpisodes(model, embedder, base, messages.slice(14), at("v5")),
    ).rejects.toEqual(refused(/grew to 2\.5×/));
    const { update: _, ...old } = base;
    await expect(
      updateEpisodes(model, embedder, old, messages.slice(14, 16), at("v5")),
    ).rejects.toEqual(refused(/before updates existed/));
  });

  it("updateOrBuild continues a base that can take the sessions, and otherwise builds the whole again as the base was built", async () => {
    const head = conversationFromMessages("c", messages.slice(0, 14));
    const base = await buildEpisodes(model, embedder, head.conversation, at("v10"), {
      ...options,
      cursor: head.cursor,
    });
    // What a full build from it repeats: the options it was given beyond the manifest's own fields.
    expect(base.manifest.build).toEqual({ alloc: "uniform", nMedoid: 1 });
    const again = rebuildOptions(base.manifest);
    expect(again).toMatchObject({
      method: "epicache",
      episodes: 2,
      budget: 24,
      blockSize: 32,
      alloc: "uniform",
      nMedoid: 1,
      positions: "compact",
      routing: { rule: "lexical" },
    });

    const whole = conversationFromMessages("c", messages.slice(0, 21));
    const delta = { ...whole.conversation, sessions: whole.conversation.sessions.slice(2) };
    const updated = await updateOrBuild(
      model,
      embedder,
      base.manifest,
      { delta, cursor: whole.cursor },
      whole.conversation,
      at("v11"),
      again,
    );
    expect(updated).toMatchObject({ kind: "incremental", reason: "new messages" });
    expect(updated.manifest.update).toMatchObject({
      kind: "incremental",
      baseVersion: "v10",
      turns: 21,
    });
    expect(updated.manifest.build).toEqual(base.manifest.build);

    // Sessions 3–5 more than double the 14 turns of the last clustering: the update is refused and the
    // whole history is built, with the base's options and the refusal as its reason.
    const all = conversationFromMessages("c", messages);
    const rest = { ...all.conversation, sessions: all.conversation.sessions.slice(2) };
    const logged: string[] = [];
    const rebuilt = await updateOrBuild(
      model,
      embedder,
      base.manifest,
      { delta: rest, cursor: all.cursor },
      all.conversation,
      at("v12"),
      rebuildOptions(base.manifest, { log: (m) => logged.push(m) }),
    );
    expect(rebuilt).toMatchObject({ kind: "full", reason: expect.stringMatching(/grew to 2\.5×/) });
    expect(rebuilt.manifest.update).toMatchObject({
      kind: "full",
      reason: rebuilt.reason,
      turns: 35,
    });
    expect(rebuilt.manifest.build).toEqual(base.manifest.build);
    expect(logged).toContain(`a full build: ${rebuilt.reason}`);
    // Told it cannot update (the file does not hold the base's last message): a full build, that reason.
    const told = await updateOrBuild(
      model,
      embedder,
      base.manifest,
      { full: "requested" },
      all.conversation,
      at("v13"),
      again,
    );
    expect(told).toMatchObject({ kind: "full", reason: "requested" });
  });
});

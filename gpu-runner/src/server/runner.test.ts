import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openEmbedder, type OnnxEmbedder } from "../embedder";
import { EpisodeStore, MANIFEST_FORMAT, type EpisodeManifest } from "../episodes";
import { openChatModel, type ChatModel } from "../runtime";
import { FsObjectStore } from "../store";
import { NEEDS_PULL, pulledModel, tinyGguf } from "../testing";
import { loadRunnerConfig } from "./config";
import { Runner } from "./runner";

const embedderPath = pulledModel("embedder");

describe.skipIf(!embedderPath)(
  `a runner asked about a version of another model ${NEEDS_PULL}`,
  () => {
    const dir = mkdtempSync(join(tmpdir(), "epicache-runner-"));
    let model: ChatModel;
    let embedder: OnnxEmbedder;
    beforeAll(async () => {
      const path = join(dir, "tiny.gguf");
      writeFileSync(path, tinyGguf({ architecture: "llama", numLayers: 2, seed: 3 }).bytes);
      model = await openChatModel(path, { graphRoot: join(dir, "graphs"), numerics: "exact" });
      embedder = await openEmbedder(embedderPath);
    });
    afterAll(async () => {
      await model?.decoder.release();
      await embedder?.release();
      rmSync(dir, { recursive: true, force: true });
    });

    it("refuses with model_mismatch, naming both models, before loading any cache", async () => {
      const store = new EpisodeStore(new FsObjectStore(join(dir, "store")));
      const manifest: EpisodeManifest = {
        format: MANIFEST_FORMAT,
        tenant: "acme",
        conversation: "c",
        version: "v1",
        model: {
          id: "smollm2-135m-instruct-q4_1",
          fingerprint: "b179c9523d0e6a0f",
          numerics: "fast",
          layers: 30,
          kvHeads: 3,
          headDim: 64,
        },
        embedder: { modelId: embedder.modelId, dimension: embedder.dimension },
        method: "full",
        budget: null,
        block: 512,
        layerBudgets: null,
        contextTokens: 1,
        dtype: "f16",
        routing: { rule: "centroid" },
        createdAt: new Date(0).toISOString(),
        // No blob behind it: the runner must refuse before it looks for one.
        episodes: [
          {
            id: 0,
            key: "missing.kvc",
            bytes: 1,
            sha256: "0",
            centroid: Array<number>(embedder.dimension).fill(0),
            windows: [0],
            representatives: [],
            entries: 1,
          },
        ],
      };
      await store.publish(manifest);
      const config = loadRunnerConfig({
        env: { EPICACHE_HOME: dir },
        overrides: { secret: "runner-test-secret-0123456789", store: join(dir, "store") },
      });
      const runner = new Runner(config, model, embedder, store);
      const refused = runner.generate({
        tenant: "acme",
        conversation: "c",
        version: "v1",
        episode: 0,
        question: "hi?",
        maxTokens: 1,
        dateHint: false,
      });
      await expect(refused).rejects.toMatchObject({ code: "model_mismatch" });
      const message = await refused.catch((e: Error) => e.message);
      expect(message).toContain("smollm2-135m-instruct-q4_1 (fingerprint b179c9523d0e6a0f)");
      expect(message).toContain(`tiny.gguf (fingerprint ${model.fingerprint})`);
    });
  },
);

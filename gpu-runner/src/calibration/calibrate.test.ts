import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { blockPrefill } from "../prefill";
import { KvCache, openChatModel, type ChatModel } from "../runtime";
import { streamingLlmPolicy } from "../press";
import { tinyGguf } from "../testing";
import { allocateLayers, calibrate } from "./calibrate";
import { keySimilarity, outputReference, outputSensitivity, squeezedKl } from "./sensitivity";
import {
  budgetsFromProfile,
  loadProfiles,
  profilesPath,
  shippedProfiles,
  PROFILES_FORMAT,
  type LayerProfile,
} from "./sensitivity-profile";
import { MODELS } from "../model-registry";

const dir = mkdtempSync(join(tmpdir(), "epicache-calibrate-"));
const path = join(dir, "tiny.gguf");
let model: ChatModel;
beforeAll(async () => {
  writeFileSync(path, tinyGguf({ architecture: "llama", numLayers: 2, seed: 5 }).bytes);
  model = await openChatModel(path, { graphRoot: join(dir, "graphs"), numerics: "exact" });
});
afterAll(async () => {
  await model?.decoder.release();
  rmSync(dir, { recursive: true, force: true });
});

const text = Array.from({ length: 96 }, (_, i) => 3 + ((i * 37 + 11) % 250));

describe("the keys protocol", () => {
  it("is the authors' windowed mask: a block's keys are those of sinks + the previous block's second half + the block", async () => {
    const sinks = 4,
      W = 16,
      budget = sinks + W / 2;
    const blocks: Float32Array[][] = [];
    await blockPrefill(model.decoder, new KvCache(model.config), text, {
      blockSize: W,
      budgets: [budget, budget],
      policy: streamingLlmPolicy(sinks),
      onBlock: ({ keys }) => blocks.push(keys),
    });
    // Block 3 (tokens 48…63) under the mask: what it may see, fed with its original positions.
    const seen = [
      ...Array.from({ length: sinks }, (_, i) => i),
      ...Array.from({ length: W / 2 }, (_, i) => 40 + i),
      ...Array.from({ length: W }, (_, i) => 48 + i),
    ];
    const out = await model.decoder.forward(
      seen.map((p) => text[p]),
      seen,
      new KvCache(model.config),
      [seen.length - 1],
    );
    const { numKvHeads: KV, headDim: D } = model.config;
    for (let l = 0; l < 2; l++) {
      for (let h = 0; h < KV; h++) {
        for (let t = 0; t < W; t++) {
          const got = blocks[3][l].subarray((h * W + t) * D, (h * W + t + 1) * D);
          const at = (h * seen.length + sinks + W / 2 + t) * D;
          const want = out.keys[l].subarray(at, at + D);
          for (let d = 0; d < D; d++) expect(got[d]).toBeCloseTo(want[d], 4);
        }
      }
    }
  });

  it("gives layer 0 (keys from embeddings alone) σ = 1, a squeezed deeper layer less, and σ = 1 everywhere when one block holds the text", async () => {
    const squeezed = await keySimilarity(model.decoder, text, {
      budget: 12,
      sinks: 4,
      squeeze: streamingLlmPolicy(4),
      span: 10,
    });
    expect(squeezed[0]).toBeCloseTo(1, 6);
    expect(squeezed[1]).toBeLessThan(1 - 1e-4);
    const roomy = await keySimilarity(model.decoder, text, {
      budget: 60,
      sinks: 4,
      squeeze: streamingLlmPolicy(4),
      span: 10,
    });
    for (const s of roomy) expect(s).toBeCloseTo(1, 9);
  });
});

describe("the output protocol", () => {
  it("measures no KL where the budget holds the text, and some where one layer is squeezed", async () => {
    const ref = await outputReference(model.decoder, text, { blockSize: 16, from: 32, every: 4 });
    expect([...ref.logProbs.keys()]).toEqual(Array.from({ length: 16 }, (_, i) => 32 + 4 * i));
    expect(
      await squeezedKl(model.decoder, ref, [text.length, text.length], streamingLlmPolicy(4)),
    ).toBeLessThan(1e-9);
    const perLayer = await outputSensitivity(model.decoder, ref, 12, streamingLlmPolicy(4));
    expect(perLayer).toHaveLength(2);
    for (const kl of perLayer) expect(kl).toBeGreaterThan(0);
  });
});

describe("calibrate", () => {
  it("saves one profile per protocol and budget, with the sharpness that did best on the calibration text", async () => {
    const { profile, path: saved } = await calibrate(model, {
      protocol: "output",
      budget: 64,
      blockSize: 64,
    });
    expect(saved).toBe(profilesPath(path, model.fingerprint));
    expect(profile.selection.map((s) => s.sharpness)).toContain(0);
    const best = Math.min(...profile.selection.map((s) => s.kl));
    expect(profile.selection.find((s) => s.sharpness === profile.sharpness)?.kl).toBe(best);
    const keys = (await calibrate(model, { protocol: "keys", budget: 64 })).profile;
    expect(keys.sharpness).toBe(1.1);
    expect(keys.params.blockSize).toBe(2 * (64 - 32));
    const file = loadProfiles(path, model.fingerprint, "tiny", 2);
    expect(Object.keys(file.profiles).sort()).toEqual(["keys@64", "output@64"]);
    expect(JSON.parse(readFileSync(saved, "utf8")).profiles["output@64"].signal).toEqual(
      profile.signal,
    );
    // A build's budgets come from the saved profile at its budget; uniform needs none.
    expect(await allocateLayers(model, "output", 64)).toEqual(budgetsFromProfile(profile));
    expect(
      (await allocateLayers(model, "output", 64)).reduce((a: number, b: number) => a + b, 0),
    ).toBe(128);
    expect(await allocateLayers(model, "uniform", 48)).toEqual([48, 48]);
    expect(existsSync(saved)).toBe(true);
  });
});

describe("shipped profiles", () => {
  it("give a build its budgets when none is saved beside the model, and a saved one takes precedence", async () => {
    const own = mkdtempSync(join(tmpdir(), "epicache-shipped-"));
    try {
      const at = join(own, "tiny.gguf");
      writeFileSync(at, tinyGguf({ architecture: "llama", numLayers: 2, seed: 5 }).bytes);
      const tiny = { ...model, path: at };
      const profile: LayerProfile = {
        protocol: "output",
        budget: 40,
        signal: [0.001, 0.1],
        sharpness: 1,
        selection: [],
        params: { tokens: 96, blockSize: 16, sinks: 4, text: "test" },
        seconds: 0,
        measuredAt: "",
      };
      const shipped = {
        format: PROFILES_FORMAT,
        fingerprint: model.fingerprint,
        model: "tiny",
        profiles: { "output@40": profile },
      } as const;
      const budgets = await allocateLayers(tiny, "output", 40, { shipped });
      expect(budgets).toEqual(budgetsFromProfile(profile));
      expect(budgets[1]).toBeGreaterThan(budgets[0]);
      // At a budget nothing was measured at: the nearest measured budget's signal and sharpness,
      // applied at this one, still without measuring.
      const at80 = await allocateLayers(tiny, "output", 80, { shipped });
      expect(at80).toEqual(budgetsFromProfile({ ...profile, budget: 80 }));
      expect(at80.reduce((a, b) => a + b, 0)).toBe(160);
      expect(at80[1]).toBeGreaterThan(at80[0]);
      // Nothing was measured or saved beside the model.
      expect(existsSync(profilesPath(at, model.fingerprint))).toBe(false);
      // Weights the shipped file was not measured on do not use it.
      const other = { ...shipped, fingerprint: "0000000000000000" };
      writeFileSync(join(own, "tiny-model.json"), JSON.stringify(other));
      expect(shippedProfiles("tiny-model", model.fingerprint, 2, own)).toBeNull();
      writeFileSync(join(own, "tiny-model.json"), JSON.stringify(shipped));
      expect(
        shippedProfiles("tiny-model", model.fingerprint, 2, own)?.profiles["output@40"],
      ).toEqual(profile);
      // A profile saved beside the model (by `calibrate`) wins over the shipped one.
      await calibrate(tiny, { protocol: "output", budget: 40, blockSize: 16 });
      const local = loadProfiles(at, model.fingerprint, "tiny", 2).profiles["output@40"];
      expect(await allocateLayers(tiny, "output", 40, { shipped })).toEqual(
        budgetsFromProfile(local),
      );
    } finally {
      rmSync(own, { recursive: true, force: true });
    }
  });

  it("ship with SmolLM2 for its pinned weights (30 layers), at 512 and 1,024 for its default allocation", () => {
    const spec = MODELS.find((m) => m.id === "smollm2-135m-instruct-q4_1")!;
    const fingerprint = spec.archives[0].members[0].sha256.slice(0, 16);
    const file = shippedProfiles(spec.id, fingerprint, 30);
    expect(file).not.toBeNull();
    expect(shippedProfiles(spec.id, "0000000000000000", 30)).toBeNull();
    for (const [key, p] of Object.entries(file!.profiles)) {
      expect(key).toBe(`${p.protocol}@${p.budget}`);
      expect(budgetsFromProfile(p).reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(
        30 * p.budget,
      );
    }
    // Its default allocation (output) finds a profile at either budget a build is likely to ask for.
    expect(spec.allocation).toBe("output");
    for (const budget of [512, 1024]) expect(file!.profiles[`output@${budget}`]).toBeDefined();
  });
});

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { openGguf } from "../gguf";
import {
  f16Value,
  f32ToF16,
  maxRelError,
  referenceForward,
  tinyGguf,
  type TinySpec,
} from "../testing";
import { configFromGguf } from "./config";
import { ANSWER_ROOM, generate } from "./generate";
import { evenEntries, KvCache } from "./kv-cache";
import { openChatModel, type ChatModel } from "./load";
import { argmax } from "./sampling";
import { ggufWeights } from "./weights";

const dir = mkdtempSync(join(tmpdir(), "epicache-decoder-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function tiny(spec: TinySpec, name: string): Promise<{ model: ChatModel; path: string }> {
  const path = join(dir, `${name}.gguf`);
  writeFileSync(path, tinyGguf(spec).bytes);
  return {
    model: await openChatModel(path, { graphRoot: join(dir, "graphs"), numerics: "exact" }),
    path,
  };
}

function reference(path: string, tokens: number[], scoreSpan = 0) {
  const file = openGguf(path);
  try {
    return referenceForward(
      ggufWeights(file, configFromGguf(file), "ref"),
      tokens,
      tokens.map((_, i) => i),
      scoreSpan,
    );
  } finally {
    file.close();
  }
}

const tokens = [5, 77, 140, 3, 250, 9, 12, 33, 201, 64, 18, 99];

const FAMILIES: Array<[string, TinySpec]> = [
  ["llama, tied head, GQA 4:2", { architecture: "llama" }],
  ["llama, untied head, MHA", { architecture: "llama", numKvHeads: 4, tied: false }],
  ["qwen2 with q/k/v biases", { architecture: "qwen2", numHeads: 4, numKvHeads: 1 }],
  ["qwen3 with q/k norm and a wider head", { architecture: "qwen3", headDim: 32 }],
  ["llama, Q4_1 weights", { architecture: "llama", type: "Q4_1" }],
  ["llama, Q8_0 weights", { architecture: "llama", type: "Q8_0", tied: false }],
];

describe("decoder graph on tiny checkpoints", () => {
  for (const [name, spec] of FAMILIES) {
    it(`${name}: logits and K/V match the float64 reference`, async () => {
      const { model, path } = await tiny(spec, name.replace(/\W+/g, "-"));
      try {
        const ref = reference(path, tokens);
        const cache = new KvCache(model.config);
        const positions = tokens.map((_, i) => i);
        const out = await model.decoder.forward(tokens, positions, cache, positions);
        const V = model.config.vocabSize;
        for (let t = 0; t < tokens.length; t++) {
          expect(maxRelError(out.logits.subarray(t * V, (t + 1) * V), ref.logits[t])).toBeLessThan(
            1e-4,
          );
        }
        if (model.numerics !== "ggml") {
          // Over a cache of 7 entries, attention in chunks of 3 (the online softmax across chunks).
          const past = new KvCache(model.config, 16);
          const head = await model.decoder.forward(
            tokens.slice(0, 7),
            positions.slice(0, 7),
            past,
            [0],
          );
          past.append(head.keys, head.values, positions.slice(0, 7));
          for (const chunk of [0, 3]) {
            const rest = await model.decoder.forward(
              tokens.slice(7),
              positions.slice(7),
              past,
              positions.slice(7).map((_, i) => i),
              { attentionChunk: chunk },
            );
            for (let t = 7; t < tokens.length; t++) {
              expect(
                maxRelError(rest.logits.subarray((t - 7) * V, (t - 6) * V), ref.logits[t]),
                `chunk ${chunk}`,
              ).toBeLessThan(1e-4);
            }
          }
        }
        const { numKvHeads: KV, headDim: D } = model.config;
        for (let l = 0; l < model.config.numLayers; l++) {
          const flat = ref.keys[l].flatMap((head) => head.flatMap((row) => Array.from(row)));
          expect(maxRelError(out.keys[l], flat)).toBeLessThan(1e-4);
          expect(out.keys[l].length).toBe(KV * tokens.length * D);
        }
      } finally {
        await model.decoder.release();
      }
    });
  }

  for (const [name, spec] of FAMILIES.slice(0, 4)) {
    for (const chunk of [0, 4])
      it(`${name}: scores of a span over a cache and new tokens match the reference's max-softmax (${chunk ? `attention in chunks of ${chunk}` : "attention at once"})`, async () => {
        const { model, path } = await tiny(spec, `scores-${name.replace(/\W+/g, "-")}`);
        try {
          const [prefix, fresh, span] = [tokens.slice(0, 6), tokens.slice(6, 10), [40, 41, 42]];
          const all = [...prefix, ...fresh, ...span];
          const ref = reference(path, all, span.length);
          const cache = new KvCache(model.config);
          const pre = await model.decoder.forward(
            prefix,
            prefix.map((_, i) => i),
            cache,
            [prefix.length - 1],
          );
          cache.append(
            pre.keys,
            pre.values,
            prefix.map((_, i) => i),
          );
          const ids = [...fresh, ...span];
          const out = await model.decoder.forward(
            ids,
            ids.map((_, i) => prefix.length + i),
            cache,
            [0],
            { scoreSpan: span.length, attentionChunk: chunk },
          );
          expect(out.scores).not.toBeNull();
          const { numKvHeads: KV } = model.config;
          for (let l = 0; l < model.config.numLayers; l++) {
            const past = out.pasts[l];
            const stride = past + ids.length;
            const got = out.scores?.[l] as Float32Array;
            expect(got.length).toBe(KV * stride);
            for (let h = 0; h < KV; h++) {
              const row = got.subarray(h * stride, (h + 1) * stride);
              const want = ref.scores?.[l][h] as Float64Array;
              const mine = [
                ...row.subarray(0, prefix.length),
                ...row.subarray(past, past + fresh.length),
              ];
              for (let j = 0; j < want.length; j++)
                expect(Math.abs(mine[j] - want[j])).toBeLessThan(1e-5);
              // Padding beyond the cache's entries and the span's own keys score 0.
              expect(Array.from(row.subarray(prefix.length, past)).every((v) => v === 0)).toBe(
                true,
              );
              expect(Array.from(row.subarray(past + fresh.length)).every((v) => v === 0)).toBe(
                true,
              );
            }
          }
          // The span does not change the logits of the tokens before it.
          const plain = await model.decoder.forward(
            fresh,
            fresh.map((_, i) => prefix.length + i),
            cache,
            [0],
            { attentionChunk: chunk },
          );
          expect(maxRelError(out.logits, plain.logits)).toBeLessThan(1e-5);
          expect(plain.scores).toBeNull();
        } finally {
          await model.decoder.release();
        }
      });
  }

  it("prefill in blocks of 1, 5 and the whole prompt gives the same next-token logits", async () => {
    const { model } = await tiny({ architecture: "llama" }, "blocks");
    try {
      const last = async (block: number) => {
        const cache = new KvCache(model.config, 4); // small capacity: exercises growth too
        let logits: Float32Array = new Float32Array();
        for (let s = 0; s < tokens.length; s += block) {
          const ids = tokens.slice(s, s + block);
          const pos = ids.map((_, i) => s + i);
          const out = await model.decoder.forward(ids, pos, cache, [ids.length - 1]);
          cache.append(out.keys, out.values, pos);
          logits = out.logits;
        }
        return logits;
      };
      const whole = await last(tokens.length);
      for (const b of [1, 5]) expect(maxRelError(await last(b), whole)).toBeLessThan(1e-5);
    } finally {
      await model.decoder.release();
    }
  });

  it("a prompt run in parts equals one call: logits of rows in any part, K/V of every token, the cache untouched", async () => {
    const { model } = await tiny({ architecture: "llama" }, "parts");
    try {
      const cache = new KvCache(model.config);
      const head = tokens.slice(0, 3);
      const pre = await model.decoder.forward(head, [0, 1, 2], cache, [2]);
      cache.append(pre.keys, pre.values, [0, 1, 2]);
      const before = cache.clone();
      const ids = tokens.slice(3);
      const pos = ids.map((_, i) => 3 + i);
      const rows = [8, 0, 4, 5]; // across parts of 4, out of order
      const one = await model.decoder.forward(ids, pos, cache, rows, { part: 0 });
      const parts = await model.decoder.forward(ids, pos, cache, rows, { part: 4 });
      expect(parts.logits.length).toBe(one.logits.length);
      expect(maxRelError(parts.logits, one.logits)).toBeLessThan(1e-5);
      for (let l = 0; l < model.config.numLayers; l++) {
        expect(parts.keys[l].length).toBe(one.keys[l].length);
        expect(maxRelError(parts.keys[l], one.keys[l])).toBeLessThan(1e-5);
        expect(maxRelError(parts.values[l], one.values[l])).toBeLessThan(1e-5);
        expect(Array.from(cache.layers[l].lengths)).toEqual(Array.from(before.layers[l].lengths));
        // The entries (a clone is compact, so compare them, not the buffers).
        expect(cache.packed(l).keys).toEqual(before.packed(l).keys);
        expect(cache.packed(l).values).toEqual(before.packed(l).values);
      }
      // The reference agrees with the parts too (the last row is the whole prompt's next token).
      const last = await model.decoder.forward(ids, pos, cache, [ids.length - 1], { part: 4 });
      const full = await model.decoder.forward(
        tokens,
        tokens.map((_, i) => i),
        new KvCache(model.config),
        [tokens.length - 1],
        { part: 0 },
      );
      expect(maxRelError(last.logits, full.logits)).toBeLessThan(1e-5);
      await expect(
        model.decoder.forward(ids, pos, cache, [ids.length], { part: 4 }),
      ).rejects.toMatchObject({ code: "invalid_argument" });
    } finally {
      await model.decoder.release();
    }
  });

  it("prefill in parts appends what forward then append would, and returns the rows' logits", async () => {
    const { model } = await tiny({ architecture: "llama" }, "prefill-parts");
    try {
      const pos = tokens.map((_, i) => i);
      const rows = [11, 2, 7];
      const byForward = new KvCache(model.config, 4);
      const one = await model.decoder.forward(tokens, pos, byForward, rows, { part: 0 });
      byForward.append(one.keys, one.values, pos);
      const byPrefill = new KvCache(model.config, 4);
      const logits = await model.decoder.prefill(tokens, pos, byPrefill, rows, { part: 5 });
      expect(maxRelError(logits, one.logits)).toBeLessThan(1e-5);
      expect(byPrefill.nextPosition).toBe(byForward.nextPosition);
      for (let l = 0; l < model.config.numLayers; l++) {
        expect(Array.from(byPrefill.layers[l].lengths)).toEqual(
          Array.from(byForward.layers[l].lengths),
        );
        const a = byPrefill.packed(l);
        const b = byForward.packed(l);
        expect(maxRelError(a.keys, b.keys)).toBeLessThan(1e-5);
        expect(maxRelError(a.values, b.values)).toBeLessThan(1e-5);
      }
      await expect(
        model.decoder.prefill(tokens, pos.slice(1), new KvCache(model.config), [0]),
      ).rejects.toMatchObject({ code: "invalid_argument" });
    } finally {
      await model.decoder.release();
    }
  });

  it("heads of different lengths: padding beyond a head's length is ignored", async () => {
    const { model } = await tiny({ architecture: "llama" }, "padding");
    try {
      const cache = new KvCache(model.config);
      const pos = tokens.map((_, i) => i);
      const out = await model.decoder.forward(tokens, pos, cache, [tokens.length - 1]);
      cache.append(out.keys, out.values, pos);
      const probe = await model.decoder.forward([7], [tokens.length], cache, [0]);
      // Garbage in the unused capacity must not change anything.
      for (const layer of cache.layers)
        layer.keys.fill(
          1e3,
          tokens.length * model.config.headDim,
          model.config.headDim * layer.capacity,
        );
      const again = await model.decoder.forward([7], [tokens.length], cache, [0]);
      expect(maxRelError(again.logits, probe.logits)).toBeLessThan(1e-6);
    } finally {
      await model.decoder.release();
    }
  });

  it("greedy generation equals step-by-step argmax of the reference", async () => {
    const { model, path } = await tiny({ architecture: "llama", seed: 7 }, "greedy");
    try {
      const prompt = [40, 41, 42, 43];
      const got: number[] = [];
      for await (const t of generate(model, prompt, { maxTokens: 8, stopIds: new Set() }))
        got.push(t.id);
      const want: number[] = [];
      const seq = [...prompt];
      for (let i = 0; i < 8; i++) {
        const ref = reference(path, seq);
        const next = argmax(Float32Array.from(ref.logits[seq.length - 1]));
        want.push(next);
        seq.push(next);
      }
      expect(got).toEqual(want);
    } finally {
      await model.decoder.release();
    }
  });

  it("sizes an answer's cache by its prompt and ANSWER_ROOM, never by its token limit, and grows it by ANSWER_ROOM", async () => {
    const { model } = await tiny({ architecture: "llama", seed: 7 }, "room");
    try {
      const history = new KvCache(model.config);
      const text = Array.from({ length: 21 }, (_, i) => 5 + i);
      await model.decoder.prefill(
        text,
        text.map((_, i) => i),
        history,
        [20],
      );
      const prompt = [40, 41, 42, 43];
      // Each answer decodes in a copy whose buffers its caller sized in its own way.
      const answer = async (maxTokens: number, room: number) => {
        const cache = history.clone(room);
        const ids: number[] = [];
        const capacities: number[][] = [];
        for await (const t of generate(model, prompt, { maxTokens, cache, stopIds: new Set() })) {
          ids.push(t.id);
          capacities.push(cache.layers.map((l) => l.capacity));
        }
        return { ids, capacities };
      };
      const short = await answer(3, 0);
      const long = await answer(3 * ANSWER_ROOM, 500);
      // The same buffers at every step whatever the limit and the caller's sizing, so the same bits.
      expect(long.capacities.slice(0, 3)).toEqual(short.capacities);
      expect(long.ids.slice(0, 3)).toEqual(short.ids);
      const first = evenEntries(text.length + prompt.length + ANSWER_ROOM);
      expect(short.capacities[0]).toEqual(Array(model.config.numLayers).fill(first));
      // Past the room it grows by ANSWER_ROOM at a time.
      const grown = new Set(long.capacities.map((c) => c[0]));
      expect([...grown]).toEqual([0, 1, 2].map((k) => first + k * ANSWER_ROOM));
    } finally {
      await model.decoder.release();
    }
  });
});

describe("ggml numerics on a tiny Q4_1 checkpoint", () => {
  it("runs batched and single-token paths and stays within quantisation noise of exact f32", async () => {
    const path = join(dir, "ggml-q4_1.gguf");
    writeFileSync(
      path,
      tinyGguf({ architecture: "llama", type: "Q4_1", hiddenSize: 64, intermediateSize: 96 }).bytes,
    );
    const exact = await openChatModel(path, { graphRoot: join(dir, "graphs"), numerics: "exact" });
    const ggml = await openChatModel(path, { graphRoot: join(dir, "graphs"), numerics: "ggml" });
    try {
      const positions = tokens.map((_, i) => i);
      const a = await exact.decoder.forward(tokens, positions, new KvCache(exact.config), [
        tokens.length - 1,
      ]);
      const b = await ggml.decoder.forward(tokens, positions, new KvCache(ggml.config), [
        tokens.length - 1,
      ]);
      expect(b.logits.every(Number.isFinite)).toBe(true);
      expect(maxRelError(b.logits, a.logits)).toBeLessThan(0.05);
      // The same last token through the single-token path (llama.cpp's other summation order).
      const cache = new KvCache(ggml.config);
      const head = tokens.slice(0, -1);
      const pre = await ggml.decoder.forward(head, positions.slice(0, -1), cache, [
        head.length - 1,
      ]);
      cache.append(pre.keys, pre.values, positions.slice(0, -1));
      const c = await ggml.decoder.forward(tokens.slice(-1), positions.slice(-1), cache, [0]);
      expect(maxRelError(c.logits, b.logits)).toBeLessThan(0.01);
      // Keys and values come back rounded to f16, as llama.cpp's cache holds them; exact ones do not.
      const isF16 = (v: number) => f16Value(f32ToF16(v)) === v;
      expect(Array.from(b.keys[0]).every(isF16)).toBe(true);
      expect(Array.from(b.values[1]).every(isF16)).toBe(true);
      expect(Array.from(a.keys[0]).every(isF16)).toBe(false);
    } finally {
      await exact.decoder.release();
      await ggml.decoder.release();
    }
  });
});

describe("fast numerics (quantised matrices through MatMulNBits)", () => {
  for (const type of ["Q4_1", "Q8_0"] as const) {
    it(`${type}: stays within int8-activation noise of exact f32, batched and single-token`, async () => {
      const path = join(dir, `fast-${type}.gguf`);
      writeFileSync(
        path,
        tinyGguf({
          architecture: "llama",
          type,
          tied: type === "Q8_0",
          hiddenSize: 64,
          intermediateSize: 96,
        }).bytes,
      );
      const exact = await openChatModel(path, {
        graphRoot: join(dir, "graphs"),
        numerics: "exact",
      });
      const fast = await openChatModel(path, { graphRoot: join(dir, "graphs"), numerics: "fast" });
      try {
        const positions = tokens.map((_, i) => i);
        const a = await exact.decoder.forward(
          tokens,
          positions,
          new KvCache(exact.config),
          positions,
        );
        const b = await fast.decoder.forward(
          tokens,
          positions,
          new KvCache(fast.config),
          positions,
        );
        expect(maxRelError(b.logits, a.logits)).toBeLessThan(0.03);
        expect(maxRelError(b.keys[1], a.keys[1])).toBeLessThan(0.03);
        const cache = new KvCache(fast.config);
        const head = tokens.slice(0, -1);
        const pre = await fast.decoder.forward(head, positions.slice(0, -1), cache, [
          head.length - 1,
        ]);
        cache.append(pre.keys, pre.values, positions.slice(0, -1));
        const c = await fast.decoder.forward(tokens.slice(-1), positions.slice(-1), cache, [0]);
        const V = fast.config.vocabSize;
        expect(maxRelError(c.logits, a.logits.subarray((tokens.length - 1) * V))).toBeLessThan(
          0.03,
        );
      } finally {
        await exact.decoder.release();
        await fast.decoder.release();
      }
    });
  }
});

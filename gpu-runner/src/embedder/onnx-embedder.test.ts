import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NEEDS_PULL, pulledModel } from "../testing";
import { openEmbedder, type OnnxEmbedder } from "./onnx-embedder";

const model = pulledModel("embedder");

function dot(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** A window of four utterances as stage 1 builds it (docs/design.md section 1). */
function window(lines: Array<[string, string]>): string {
  return lines.map(([speaker, text]) => `${speaker} said, "${text}"`).join("\n");
}

const LONG = Array.from(
  { length: 400 },
  (_, i) => `Sentence number ${i} talks about topic ${i % 7}.`,
).join(" ");

const TEXTS = [
  "The quick brown fox jumps over the lazy dog.",
  "",
  'Caroline said, "I went to the LGBTQ support group yesterday and it was so powerful."',
  window([
    ["Caroline", "Hey Mel! Good to see you. How have you been?"],
    [
      "Melanie",
      "Hey Caroline! I'm swamped with the kids and work, but I painted a lake sunrise last week.",
    ],
    ["Caroline", "That sounds lovely. I've been researching adoption agencies."],
    ["Melanie", "Wow, that's a big step. I'm so happy for you!"],
  ]),
  "hello",
  LONG,
  "Short.",
];

describe.skipIf(!model)(`OnnxEmbedder on all-MiniLM-L6-v2 int8 ${NEEDS_PULL}`, () => {
  let embedder: OnnxEmbedder;
  beforeAll(async () => {
    embedder = await openEmbedder(model, { threads: 2 });
  });
  afterAll(async () => {
    await embedder?.release();
  });

  it("names the model and its width", () => {
    expect(embedder.modelId).toBe("sentence-transformers/all-MiniLM-L6-v2");
    expect(embedder.dimension).toBe(384);
    expect(embedder.maxLength).toBe(256);
  });

  it("opens the pulled default without a path", async () => {
    const byDefault = await openEmbedder(undefined, { threads: 1 });
    try {
      expect(byDefault.modelId).toBe(embedder.modelId);
      const [a] = await byDefault.embed(["hello"]);
      const [b] = await embedder.embed(["hello"]);
      expect(maxAbsDiff(a, b)).toBeLessThan(1e-5);
    } finally {
      await byDefault.release();
    }
  });

  it("embeds nothing for no texts", async () => {
    expect(await embedder.embed([])).toEqual([]);
  });

  it("gives unit-norm vectors of the model's width, the empty string included", async () => {
    const vectors = await embedder.embed(TEXTS);
    expect(vectors).toHaveLength(TEXTS.length);
    for (const v of vectors) {
      expect(v).toBeInstanceOf(Float32Array);
      expect(v).toHaveLength(384);
      expect(Math.abs(Math.sqrt(dot(v, v)) - 1)).toBeLessThan(1e-5);
      expect(v.every(Number.isFinite)).toBe(true);
    }
  });

  it("matches vectors computed independently with Python onnxruntime on the same file", async () => {
    // Obtained with Python onnxruntime 1.32.0 and tokenizers 0.23.3 on the same model.onnx and
    // tokenizer.json: Tokenizer.from_file(...); no_padding(); enable_truncation(256); one text per run
    // with input_ids, attention_mask and token_type_ids = 0; last_hidden_state averaged over the
    // attention mask, divided by its L2 norm; components [0, 1, 2, 100, 383], rounded to 6 decimals.
    // (Our vectors agreed to all 6 decimals when this was written.)
    const components = [0, 1, 2, 100, 383];
    const expected: Array<[string, number[]]> = [
      [TEXTS[0], [0.041831, 0.058665, 0.051349, 0.010305, 0.101395]],
      [TEXTS[1], [-0.127353, 0.040874, -0.001428, 0.034425, -0.012619]],
      [TEXTS[2], [-0.010138, 0.084138, -0.034867, -0.023436, -0.015523]],
      // 256 word pieces after truncation: checks that we cut where Hugging Face does.
      [LONG, [0.047309, -0.037036, 0.018867, 0.065474, -0.037446]],
    ];
    const vectors = await embedder.embed(expected.map(([t]) => t));
    expected.forEach(([, want], i) => {
      components.forEach((c, j) => expect(Math.abs(vectors[i][c] - want[j])).toBeLessThan(1e-3));
    });
  });

  it("gives the same vector whatever the batch size and position in the input", async () => {
    const reference = await Promise.all(TEXTS.map(async (t) => (await embedder.embed([t]))[0]));
    const reversed = [...TEXTS].reverse();
    for (const batchSize of [1, 2, 3, 16]) {
      const forward = await embedder.embed(TEXTS, { batchSize });
      const backward = await embedder.embed(reversed, { batchSize });
      TEXTS.forEach((_, i) => {
        expect(maxAbsDiff(forward[i], reference[i])).toBeLessThan(1e-5);
        expect(maxAbsDiff(backward[TEXTS.length - 1 - i], reference[i])).toBeLessThan(1e-5);
      });
    }
    // Duplicates in one batch each get their own (equal) vector.
    const [a, b] = await embedder.embed(["hello", "hello"]);
    expect(maxAbsDiff(a, b)).toBeLessThan(1e-6);
  });

  it("puts a paraphrase closer than an unrelated sentence", async () => {
    const [q, para, other] = await embedder.embed([
      "I adopted a puppy from the shelter last weekend.",
      "Last weekend we brought home a young dog from the animal shelter.",
      "The quarterly tax report is due at the end of the month.",
    ]);
    expect(dot(q, para)).toBeGreaterThan(dot(q, other) + 0.2);
  });

  it("cuts long text instead of failing: only the first 256 word pieces count", async () => {
    const tailA = " And then the conversation turned to something else entirely.".repeat(50);
    const tailB = " Completely different words about astronomy, cooking and jazz.".repeat(500);
    const [a, b, head] = await embedder.embed([LONG + tailA, LONG + tailB, LONG]);
    expect(maxAbsDiff(a, b)).toBeLessThan(1e-6);
    expect(maxAbsDiff(a, head)).toBeLessThan(1e-6);
  });

  it("rejects a batch size that is not a positive integer", async () => {
    await expect(embedder.embed(["x"], { batchSize: 0 })).rejects.toMatchObject({
      code: "invalid_argument",
    });
    await expect(embedder.embed(["x"], { batchSize: 1.5 })).rejects.toMatchObject({
      code: "invalid_argument",
    });
  });
});

describe("openEmbedder without a model", () => {
  it("says what is missing", async () => {
    await expect(openEmbedder("/nonexistent/model.onnx")).rejects.toMatchObject({
      code: "model_invalid",
    });
  });
});

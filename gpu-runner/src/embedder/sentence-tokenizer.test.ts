import { describe, expect, it } from "vitest";
import { NEEDS_PULL, pulledModel } from "../testing";
import { dirname, join } from "node:path";
import { SentenceTokenizer, specialFrameOf } from "./sentence-tokenizer";

describe("specialFrameOf", () => {
  it("reads a BERT template: [CLS] $A [SEP]", () => {
    const pp = {
      type: "TemplateProcessing",
      single: [
        { SpecialToken: { id: "[CLS]", type_id: 0 } },
        { Sequence: { id: "A", type_id: 0 } },
        { SpecialToken: { id: "[SEP]", type_id: 0 } },
      ],
      special_tokens: {
        "[CLS]": { id: "[CLS]", ids: [101], tokens: ["[CLS]"] },
        "[SEP]": { id: "[SEP]", ids: [102], tokens: ["[SEP]"] },
      },
    };
    expect(specialFrameOf(pp)).toEqual({ prefix: [101], suffix: [102] });
  });

  it("reads BertProcessing and RobertaProcessing, and no post-processor as no specials", () => {
    expect(
      specialFrameOf({ type: "BertProcessing", sep: ["[SEP]", 102], cls: ["[CLS]", 101] }),
    ).toEqual({ prefix: [101], suffix: [102] });
    expect(
      specialFrameOf({ type: "RobertaProcessing", sep: ["</s>", 2], cls: ["<s>", 0] }),
    ).toEqual({ prefix: [0], suffix: [2] });
    expect(specialFrameOf(null)).toEqual({ prefix: [], suffix: [] });
  });

  it("rejects templates it cannot follow", () => {
    expect(() => specialFrameOf({ type: "ByteLevel" })).toThrow(/not supported/);
    expect(() =>
      specialFrameOf({
        type: "TemplateProcessing",
        single: [{ SpecialToken: { id: "[CLS]" } }],
        special_tokens: { "[CLS]": { ids: [1] } },
      }),
    ).toThrow(/no \$A/);
    expect(() =>
      specialFrameOf({
        type: "TemplateProcessing",
        single: [{ SpecialToken: { id: "[X]" } }, { Sequence: { id: "A" } }],
        special_tokens: {},
      }),
    ).toThrow(/no ids/);
  });
});

const model = pulledModel("embedder");

describe.skipIf(!model)(
  `SentenceTokenizer on all-MiniLM-L6-v2's tokenizer.json ${NEEDS_PULL}`,
  () => {
    const tokenizer = () =>
      SentenceTokenizer.fromFile(join(dirname(model ?? ""), "tokenizer.json"));

    it("gives the ids of Hugging Face's Rust tokenizers", () => {
      // Expected ids from Python `tokenizers` 0.23.3: Tokenizer.from_file(<same tokenizer.json>) with
      // no_padding() and no_truncation(), then .encode(text).ids.
      const t = tokenizer();
      expect(t.encode("The quick brown fox jumps over the lazy dog.", 256)).toEqual([
        101, 1996, 4248, 2829, 4419, 14523, 2058, 1996, 13971, 3899, 1012, 102,
      ]);
      expect(t.encode("Café naïve résumé — 東京 🚀 don't", 256)).toEqual([
        101, 7668, 15743, 13746, 1517, 1879, 1755, 100, 2123, 1005, 1056, 102,
      ]);
      expect(t.encode("İstanbul straße ﬁne", 256)).toEqual([
        101, 9960, 2358, 27807, 1984, 2638, 102,
      ]);
      expect(t.encode("[CLS] literal [SEP]", 256)).toEqual([101, 101, 18204, 102, 102]);
      expect(t.encode("", 256)).toEqual([101, 102]);
      expect(t.encode("   ", 256)).toEqual([101, 102]);
    });

    it("ignores the file's fixed padding to 128 and truncation to 128", () => {
      const t = tokenizer();
      expect(t.encode("hello", 256)).toEqual([101, 7592, 102]);
      const long = Array.from(
        { length: 400 },
        (_, i) => `Sentence number ${i} talks about topic ${i % 7}.`,
      ).join(" ");
      expect(t.encode(long, 256)).toHaveLength(256);
      expect(t.padId).toBe(0);
    });

    it("cuts long text at the end and keeps [CLS] and [SEP]; the prefix shortcut equals tokenizing everything", () => {
      const t = tokenizer();
      const texts = [
        Array.from(
          { length: 400 },
          (_, i) => `Sentence number ${i} talks about topic ${i % 7}.`,
        ).join(" "),
        "한국어 텍스트 테스트 ".repeat(300),
        "Ünïcödé façade, déjà vu; naïve coöperation!\n".repeat(200),
        "x".repeat(5000) + " tail words here",
      ];
      for (const text of texts) {
        // maxLength far above the text's length: the whole text is tokenized in one go.
        const whole = t.encode(text, 1_000_000);
        for (const maxLength of [3, 16, 256]) {
          const ids = t.encode(text, maxLength);
          const expected =
            whole.length <= maxLength ? whole : [...whole.slice(0, maxLength - 1), 102];
          expect(ids).toEqual(expected);
          expect(ids[0]).toBe(101);
          expect(ids.at(-1)).toBe(102);
        }
      }
      expect(() => t.encode("hi", 2)).toThrow(/no room/);
    });
  },
);

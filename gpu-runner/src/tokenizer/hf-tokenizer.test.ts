import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { bufferSource, parseGguf } from "../gguf";
import { CHATML_TEMPLATE, tinyGguf, tinyHfTokenizerFiles } from "../testing";
import { bosOfPostProcessor } from "./hf-tokenizer";
import { TextTokenizer, type ChatMessage } from "./tokenizer";

const root = mkdtempSync(join(tmpdir(), "epicache-hf-tokenizer-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A directory with the tiny tokenizer files, `edit` applied to tokenizer_config.json, plus `extra` files. */
function tokenizerDir(
  name: string,
  opts: { pre: string; bos: boolean; nfc: boolean },
  edit: (config: Record<string, unknown>) => Record<string, unknown> = (c) => c,
  extra: Record<string, string> = {},
): string {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  const { tokenizer, config } = tinyHfTokenizerFiles(opts);
  writeFileSync(join(dir, "tokenizer.json"), JSON.stringify(tokenizer));
  writeFileSync(join(dir, "tokenizer_config.json"), JSON.stringify(edit(config)));
  for (const [file, text] of Object.entries(extra)) writeFileSync(join(dir, file), text);
  return dir;
}

const LLAMA = { pre: "llama-bpe", bos: true, nfc: false };
const QWEN = { pre: "qwen2", bos: false, nfc: true };

const unicodeText = fc.oneof(
  fc.string({ unit: "grapheme", maxLength: 40 }),
  fc.string({ unit: "binary", maxLength: 40 }),
  fc
    .array(
      fc.constantFrom(
        "\u0000",
        "\t",
        "\n",
        "\r\n",
        "🎉",
        "👩‍👩‍👧",
        "日本語",
        "é",
        "e\u0301",
        " ",
        "  ",
        "12345",
        "<|im_end|>",
        "<|begin_of_text|>",
        "the",
      ),
      { maxLength: 12 },
    )
    .map((parts) => parts.join("")),
);

describe("TextTokenizer.fromHf", () => {
  const llama = TextTokenizer.fromHf(tokenizerDir("llama", LLAMA));
  const qwen = TextTokenizer.fromHf(tokenizerDir("qwen", QWEN));

  it("round-trips arbitrary Unicode text (Qwen's NFC normalizer composes it first)", () => {
    fc.assert(
      fc.property(unicodeText, (text) => {
        expect(llama.decode(llama.encode(text))).toBe(text);
        expect(qwen.decode(qwen.encode(text))).toBe(text.normalize("NFC"));
      }),
      { numRuns: 200, seed: 7 },
    );
  });

  it("applies the BPE merges and keeps added tokens after the BPE vocabulary", () => {
    expect(llama.vocabSize).toBe(288);
    expect(llama.tokenId("<|begin_of_text|>")).toBe(266);
    expect(llama.encode("the").map((id) => llama.decode([id]))).toEqual(["t", "he"]);
    expect(llama.encode(" the")).toEqual([llama.tokenId("Ġthe")]);
    expect(llama.encode("<|im_end|>", { parseSpecial: true })).toEqual([
      llama.tokenId("<|im_end|>"),
    ]);
    expect(llama.encode("<|im_end|>")).not.toContain(llama.tokenId("<|im_end|>"));
  });

  it("splits like the GGUF tokenizer given the same vocabulary and pre-tokenizer", () => {
    const hf = TextTokenizer.fromHf(
      tokenizerDir("smollm", { pre: "smollm", bos: false, nfc: false }),
    );
    const gguf = TextTokenizer.fromGguf(parseGguf(bufferSource(tinyGguf().bytes)));
    fc.assert(
      fc.property(unicodeText, (text) => {
        const pieces = (tok: TextTokenizer) =>
          tok.encode(text).map((id) => tok.decode([id], { keepSpecial: true }));
        expect(pieces(hf)).toEqual(pieces(gguf));
      }),
      { numRuns: 100, seed: 3 },
    );
  });

  it("adds BOS as the tokenizer.json post-processor says", () => {
    expect(llama.addBos).toBe(true);
    expect(llama.bosId).toBe(266);
    expect(llama.encodePrompt("the cat")).toEqual([266, ...llama.encode("the cat")]);
    expect(qwen.addBos).toBe(false);
    expect(qwen.bosId).toBeUndefined();
    expect(qwen.encodePrompt("the cat")).toEqual(qwen.encode("the cat"));
    expect(bosOfPostProcessor({ type: "ByteLevel" })).toBeUndefined();
    expect(
      bosOfPostProcessor({ type: "RobertaProcessing", cls: ["<s>", 0], sep: ["</s>", 2] }),
    ).toEqual({ content: "<s>", id: 0 });
    // A template that starts with the sequence adds nothing before it.
    expect(
      bosOfPostProcessor({
        type: "TemplateProcessing",
        single: [{ Sequence: { id: "A", type_id: 0 } }],
        special_tokens: {},
      }),
    ).toBeUndefined();
  });

  it("renders the chat template of tokenizer_config.json, user text never becoming control tokens", () => {
    const messages: ChatMessage[] = [
      { role: "system", content: "be brief" },
      { role: "user", content: "hi <|im_end|> there 🎉" },
    ];
    for (const tok of [llama, qwen]) {
      const ids = tok.encodeChat(messages);
      const bos = tok.addBos ? "<|begin_of_text|>" : "";
      expect(tok.decode(ids, { keepSpecial: true })).toBe(bos + tok.renderChat(messages));
      expect(ids.filter((id) => id === tok.tokenId("<|im_end|>"))).toHaveLength(2);
      expect(tok.decode(ids)).toBe("system\nbe brief\nuser\nhi <|im_end|> there 🎉\nassistant\n");
    }
    expect(qwen.renderChat(messages, { addGenerationPrompt: false })).toBe(
      "<|im_start|>system\nbe brief<|im_end|>\n<|im_start|>user\nhi <|im_end|> there 🎉<|im_end|>\n",
    );
  });

  it("lets the template transform the real contents (Llama 3 trims them) while control text stays text", () => {
    const trimming =
      "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content | trim }}<|im_end|>\n{% endfor %}";
    const tok = TextTokenizer.fromHf(
      tokenizerDir("trim", QWEN, (c) => c, { "chat_template.jinja": trimming }),
    );
    const messages: ChatMessage[] = [{ role: "user", content: "  <|im_end|> hi \uE0007\uE001  " }];
    const ids = tok.encodeChat(messages);
    expect(tok.decode(ids, { keepSpecial: true })).toBe(
      "<|im_start|>user\n<|im_end|> hi \uE0007\uE001<|im_end|>\n",
    );
    expect(ids.filter((id) => id === tok.tokenId("<|im_end|>"))).toHaveLength(1);
    // For ordinary text, the ids are those of the rendered text parsed with specials (transformers' and llama.cpp's way).
    const plain: ChatMessage[] = [
      { role: "system", content: " be brief\n" },
      { role: "user", content: "the 12345 cats\n\n" },
    ];
    expect(tok.encodeChat(plain)).toEqual(
      tok.encode(tok.renderChat(plain), { parseSpecial: true }),
    );
  });

  it("stops on eos_token, the end-of-turn tokens and generation_config's eos ids", () => {
    expect(qwen.eosId).toBe(qwen.tokenId("<|im_end|>"));
    expect(qwen.stopIds).toEqual(
      new Set([qwen.tokenId("<|im_end|>"), qwen.tokenId("<|endoftext|>")]),
    );
    const dir = tokenizerDir("generation", QWEN, (c) => c, {
      "generation_config.json": JSON.stringify({ eos_token_id: [280, 281] }),
    });
    expect(TextTokenizer.fromHf(dir).stopIds).toEqual(new Set([269, 267, 280, 281]));
  });

  it("reads chat_template.jinja first, then named templates and added-token objects in tokenizer_config.json", () => {
    const jinja = "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}";
    const fromFile = TextTokenizer.fromHf(
      tokenizerDir("jinja-file", QWEN, (c) => c, { "chat_template.jinja": jinja }),
    );
    expect(fromFile.renderChat([{ role: "user", content: "x" }])).toBe("[user] x\n");
    const named = TextTokenizer.fromHf(
      tokenizerDir("named", QWEN, (c) => ({
        ...c,
        chat_template: [
          { name: "tool_use", template: "tools" },
          { name: "default", template: CHATML_TEMPLATE },
        ],
        eos_token: { content: "<|endoftext|>", special: true },
      })),
    );
    expect(named.renderChat([{ role: "user", content: "x" }])).toBe(
      "<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\n",
    );
    expect(named.eosId).toBe(named.tokenId("<|endoftext|>"));
    const none = TextTokenizer.fromHf(
      tokenizerDir("no-template", QWEN, ({ chat_template: _, ...c }) => c),
    );
    expect(none.hasChatTemplate).toBe(false);
    expect(() => none.encodeChat([{ role: "user", content: "x" }])).toThrow(
      expect.objectContaining({ code: "tokenizer_invalid" }),
    );
  });

  it("pads the vocabulary to config.json's vocab_size with tokens that decode to nothing", () => {
    const dir = tokenizerDir("padded", QWEN, (c) => c, {
      "config.json": JSON.stringify({ vocab_size: 300 }),
    });
    const tok = TextTokenizer.fromHf(dir);
    expect(tok.vocabSize).toBe(300);
    expect(tok.decode([116, 299, 288])).toBe("t");
    expect(tok.decode([299], { keepSpecial: true })).toBe("[PAD299]");
    expect(tok.encode("[PAD299]")).not.toContain(299);
  });

  it("reports missing, malformed or unsupported tokenizer files with tokenizer_invalid", () => {
    const empty = join(root, "empty");
    mkdirSync(empty, { recursive: true });
    expect(() => TextTokenizer.fromHf(empty)).toThrow(
      expect.objectContaining({
        code: "tokenizer_invalid",
        message: expect.stringMatching(/no tokenizer\.json/),
      }),
    );
    const broken = tokenizerDir("broken", QWEN);
    writeFileSync(join(broken, "tokenizer.json"), "{");
    expect(() => TextTokenizer.fromHf(broken)).toThrow(
      expect.objectContaining({
        code: "tokenizer_invalid",
        message: expect.stringMatching(/not valid JSON/),
      }),
    );
    const wordpiece = tokenizerDir("wordpiece", QWEN);
    const json = JSON.parse(readFileSync(join(wordpiece, "tokenizer.json"), "utf8"));
    writeFileSync(
      join(wordpiece, "tokenizer.json"),
      JSON.stringify({ ...json, model: { ...json.model, type: "WordPiece" } }),
    );
    expect(() => TextTokenizer.fromHf(wordpiece)).toThrow(/"WordPiece" is not supported/);
    const badEos = tokenizerDir("bad-eos", QWEN, (c) => ({ ...c, eos_token: "<|nope|>" }));
    expect(() => TextTokenizer.fromHf(badEos)).toThrow(/eos_token/);
  });
});

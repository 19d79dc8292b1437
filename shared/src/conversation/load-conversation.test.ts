import { describe, expect, it } from "vitest";
import { benchFiles, NEEDS_BENCH_DATA, thrown } from "../testing";
import { detectConversationFormat, loadConversation } from "./load-conversation";

const locomo = JSON.stringify([
  {
    sample_id: "conv-1",
    conversation: {
      speaker_a: "A",
      speaker_b: "B",
      session_1: [{ speaker: "A", dia_id: "D1:1", text: "hi" }],
    },
    qa: [{ question: "q", answer: "a", evidence: ["D1:1"], category: 4 }],
  },
]);
const realtalk = JSON.stringify({
  name: { speaker_1: "A", speaker_2: "B" },
  session_1: [
    { clean_text: "hi", speaker: "A", date_time: "29.12.2023, 22:42:04", dia_id: "D1:1" },
  ],
  qa: [],
});
const jsonl = '{"speaker": "A", "text": "hi"}\n{"speaker": "B", "text": "hello"}\n';

describe("detectConversationFormat", () => {
  it("tells the three formats apart", () => {
    expect(detectConversationFormat(locomo)).toBe("locomo");
    expect(detectConversationFormat(JSON.stringify(JSON.parse(locomo)[0]))).toBe("locomo"); // one sample
    expect(detectConversationFormat(realtalk)).toBe("realtalk");
    expect(detectConversationFormat(jsonl)).toBe("jsonl");
    expect(detectConversationFormat('{"speaker": "A", "text": "only line"}')).toBe("jsonl");
    expect(detectConversationFormat(`\uFEFF\n${jsonl}`)).toBe("jsonl");
  });

  it("sends broken LoCoMo and JSONL to their loaders, which name the place", () => {
    expect(detectConversationFormat('[{"sample_id": ')).toBe("locomo");
    expect(detectConversationFormat('{"speaker": "A", "text": "hi"}\n{"speaker": ')).toBe("jsonl");
    expect(thrown(() => loadConversation('[{"sample_id": ')).message).toContain(
      "LoCoMo JSON is not valid JSON at line 1, column 16",
    );
    expect(
      thrown(() => loadConversation('{"speaker": "A", "text": "hi"}\n{"speaker": ')).message,
    ).toContain("line 2 of the JSONL is not valid JSON");
  });

  it("rejects what is none of them", () => {
    for (const text of ["", "hello", '{"title": "x"}', "42", '{"a": ']) {
      const error = thrown(() => detectConversationFormat(text));
      expect(error.code).toBe("conversation_invalid");
      expect(error.message).toMatch(/^cannot tell the conversation format/);
    }
  });
});

describe("loadConversation", () => {
  it("loads each format, detected or given, with its options", () => {
    expect(loadConversation(locomo).conversation.id).toBe("conv-1");
    expect(loadConversation(locomo, { sampleId: "conv-1" }).qa).toHaveLength(1);
    expect(loadConversation(realtalk).conversation.id).toBe("realtalk-a-b");
    expect(loadConversation(realtalk, { id: "rt" }).conversation.id).toBe("rt");
    expect(loadConversation(jsonl, { id: "j" }).conversation.speakers).toEqual(["A", "B"]);
    // A given format is not second-guessed.
    expect(thrown(() => loadConversation(jsonl, { format: "realtalk" })).message).toContain(
      "REALTALK JSON is not valid JSON",
    );
  });

  const [locomoFiles, realtalkFiles] = [benchFiles("locomo"), benchFiles("realtalk")];
  it.skipIf(locomoFiles.length + realtalkFiles.length === 0)(
    `detects the real files ${NEEDS_BENCH_DATA}`,
    async () => {
      for (const file of locomoFiles)
        expect(detectConversationFormat(await file.text()), file.name).toBe("locomo");
      for (const file of realtalkFiles)
        expect(detectConversationFormat(await file.text()), file.name).toBe("realtalk");
    },
  );
});

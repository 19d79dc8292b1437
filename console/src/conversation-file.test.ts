import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { REPO_ROOT } from "../../gpu-runner/src/paths";
import {
  batchesOf,
  conversationIdOf,
  formatBytes,
  formatSeconds,
  isConversationId,
  parseConversation,
} from "./conversation-file";

const locomoSample = (id: string) => ({
  sample_id: id,
  conversation: {
    speaker_a: "Ann",
    speaker_b: "Bo",
    session_1_date_time: "1:56 pm on 8 May, 2023",
    session_1: [
      { speaker: "Ann", dia_id: "D1:1", text: "Hi Bo!" },
      { speaker: "Bo", dia_id: "D1:2", text: `Hi Ann, this is ${id}.` },
    ],
    session_2_date_time: "7:55 pm on 9 June, 2023",
    session_2: [
      {
        speaker: "Ann",
        dia_id: "D2:1",
        text: "Meet my new cat!",
        blip_caption: "a photo of a cat on a sofa",
      },
    ],
  },
  qa: [],
});

describe("parseConversation", () => {
  it("sends a JSONL file's lines as they are: the append route's messages", () => {
    const text = readFileSync(
      join(REPO_ROOT, "test", "fixtures", "conversation-excerpt.jsonl"),
      "utf8",
    );
    const parsed = parseConversation(text);
    expect(parsed).toMatchObject({
      format: "jsonl",
      sessions: 3,
      speakers: ["Maya", "Tom"],
      samples: [],
      suggestedId: undefined,
    });
    expect(parsed.messages).toEqual(
      text
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l)),
    );
  });

  it("gives a JSONL line without an id the loader's, keeps its session as written, and drops other fields", () => {
    const parsed = parseConversation(
      '\uFEFF{"speaker":"Ann","text":"Hi","session":"mon","mood":"happy"}\r\n\n{"id":"x","speaker":"Bo","text":"Yo","timestamp":"2024-05-07T09:00:00Z"}\n',
    );
    expect(parsed.messages).toEqual([
      { id: "D1:1", speaker: "Ann", text: "Hi", session: "mon" },
      { id: "x", speaker: "Bo", text: "Yo", timestamp: "2024-05-07T09:00:00Z" },
    ]);
  });

  it("reads a one-line JSONL file as JSONL", () => {
    expect(parseConversation('{"id":"m1","speaker":"Ann","text":"Hi","session":1}')).toMatchObject({
      format: "jsonl",
      messages: [{ id: "m1", speaker: "Ann", text: "Hi", session: 1 }],
    });
  });

  it("turns a LoCoMo sample's turns into messages: dia_id, session number and date, captions in the text; lists the samples", () => {
    const file = JSON.stringify([locomoSample("conv-26"), locomoSample("conv-30")]);
    const first = parseConversation(file);
    expect(first).toMatchObject({
      format: "locomo",
      sessions: 2,
      speakers: ["Ann", "Bo"],
      samples: ["conv-26", "conv-30"],
      suggestedId: "conv-26",
    });
    expect(first.messages).toEqual([
      {
        id: "D1:1",
        speaker: "Ann",
        text: "Hi Bo!",
        session: 1,
        timestamp: "1:56 pm on 8 May, 2023",
      },
      {
        id: "D1:2",
        speaker: "Bo",
        text: "Hi Ann, this is conv-26.",
        session: 1,
        timestamp: "1:56 pm on 8 May, 2023",
      },
      {
        id: "D2:1",
        speaker: "Ann",
        text: "Meet my new cat! [shares an image: a photo of a cat on a sofa]",
        session: 2,
        timestamp: "7:55 pm on 9 June, 2023",
      },
    ]);
    const second = parseConversation(file, { sampleId: "conv-30" });
    expect(second.suggestedId).toBe("conv-30");
    expect(second.messages[1].text).toBe("Hi Ann, this is conv-30.");
  });

  it("turns a REALTALK chat into messages with each turn's own time", () => {
    const message = (dia_id: string, speaker: string, clean_text: string, date_time: string) => ({
      clean_text,
      speaker,
      date_time,
      img_file: [],
      img_url: [],
      dia_id,
    });
    const chat = {
      name: { speaker_1: "Fahim Khan", speaker_2: "elise" },
      session_1: [
        message("D1:1", "Fahim Khan", "Hey! How are you?", "29.12.2023, 22:42:04"),
        message("D1:2", "elise", "Good!", "30.12.2023, 00:32:20"),
      ],
      session_1_date_time: "29.12.2023, 22:42:04",
      qa: [],
    };
    const parsed = parseConversation(JSON.stringify(chat));
    expect(parsed).toMatchObject({
      format: "realtalk",
      sessions: 1,
      samples: [],
      suggestedId: "realtalk-fahim-khan-elise",
    });
    expect(parsed.messages).toEqual([
      {
        id: "D1:1",
        speaker: "Fahim Khan",
        text: "Hey! How are you?",
        session: 1,
        timestamp: "29.12.2023, 22:42:04",
      },
      {
        id: "D1:2",
        speaker: "elise",
        text: "Good!",
        session: 1,
        timestamp: "30.12.2023, 00:32:20",
      },
    ]);
  });

  it("throws the loader's error, naming the place", () => {
    expect(() =>
      parseConversation('{"speaker":"Ann","text":"Hi"}\n{"speaker":"Bo","text":3}'),
    ).toThrow(/line 2 of the JSONL: text must be a string/);
    expect(() => parseConversation("hello")).toThrow(/cannot tell the conversation format/);
    expect(() => parseConversation(JSON.stringify([locomoSample("a")]), { sampleId: "b" })).toThrow(
      /b/,
    );
  });
});

describe("batchesOf", () => {
  const messages = Array.from({ length: 7 }, (_, i) => ({
    id: `m${i}`,
    speaker: "Ann",
    text: "x".repeat(100),
  }));

  it("cuts by count and by the request's bytes, in order", () => {
    expect(
      batchesOf(messages, { maxMessages: 3, maxBytes: 1e6 }).map((b) => b.map((m) => m.id)),
    ).toEqual([["m0", "m1", "m2"], ["m3", "m4", "m5"], ["m6"]]);
    const one = new TextEncoder().encode(JSON.stringify(messages[0])).length + 1;
    const byBytes = batchesOf(messages, { maxMessages: 500, maxBytes: 15 + 2 * one });
    expect(byBytes.map((b) => b.length)).toEqual([2, 2, 2, 1]);
    // Each batch's body is within the bound.
    for (const b of byBytes)
      expect(new TextEncoder().encode(JSON.stringify({ messages: b })).length).toBeLessThanOrEqual(
        15 + 2 * one,
      );
    expect(byBytes.flat()).toEqual(messages);
  });

  it("puts a message larger than the bound in a batch of its own, and makes none of nothing", () => {
    const big = { id: "big", speaker: "Ann", text: "y".repeat(5000) };
    expect(
      batchesOf([messages[0], big, messages[1]], { maxMessages: 500, maxBytes: 1000 }).map((b) =>
        b.map((m) => m.id),
      ),
    ).toEqual([["m0"], ["big"], ["m1"]]);
    expect(batchesOf([])).toEqual([]);
    expect(
      batchesOf(
        Array.from({ length: 1201 }, (_, i) => ({ id: `${i}`, speaker: "A", text: "t" })),
      ).map((b) => b.length),
    ).toEqual([500, 500, 201]);
  });
});

describe("ids and words", () => {
  it("tells and makes conversation ids as the edge takes them", () => {
    expect(["conv-26", "a", "A.b_c-1", "x".repeat(64)].every(isConversationId)).toBe(true);
    expect(["", "-a", "a..b", "a b", "x".repeat(65), "é"].some(isConversationId)).toBe(false);
    expect(conversationIdOf("Chat 2 Kevin & Elise")).toBe("Chat-2-Kevin-Elise");
    expect(conversationIdOf("..hidden..file")).toBe("hidden.file");
    expect(conversationIdOf("---")).toBeUndefined();
  });

  it("writes seconds and bytes", () => {
    expect([0, 12.4, 65, 3725].map(formatSeconds)).toEqual([
      "0 s",
      "12 s",
      "1 min 5 s",
      "1 h 2 min",
    ]);
    expect([512, 12_595, 4 * 1024 * 1024].map(formatBytes)).toEqual([
      "512 B",
      "12.3 KiB",
      "4.0 MiB",
    ]);
  });
});

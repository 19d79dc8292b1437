import { describe, expect, it } from "vitest";
import { thrown } from "../testing";
import { loadJsonl } from "./jsonl";

const lines = (...objects: unknown[]): string => objects.map((o) => JSON.stringify(o)).join("\n");

describe("loadJsonl", () => {
  it("starts a session when `session` changes and numbers sessions in order of appearance", () => {
    const text = [
      JSON.stringify({
        speaker: "Ann",
        text: "Hi!",
        session: "mon",
        timestamp: "2024-05-06T09:00:00Z",
      }),
      "",
      JSON.stringify({ speaker: "Bo", text: "Hello." }), // no session: stays in "mon"
      "   ",
      JSON.stringify({ speaker: "Ann", text: "Tuesday now.", session: "tue" }),
      JSON.stringify({
        speaker: "Bo",
        text: "Still Tuesday.",
        session: "tue",
        timestamp: "2024-05-07T10:00:00Z",
      }),
      JSON.stringify({ speaker: "Cy", text: "Monday again?", session: "mon" }),
      "",
    ].join("\n");
    const { conversation, qa } = loadJsonl(text, { id: "chat" });
    expect(qa).toEqual([]);
    expect(conversation).toEqual({
      id: "chat",
      speakers: ["Ann", "Bo", "Cy"],
      sessions: [
        {
          index: 1,
          date: "2024-05-06T09:00:00Z",
          turns: [
            { id: "D1:1", speaker: "Ann", text: "Hi!", timestamp: "2024-05-06T09:00:00Z" },
            { id: "D1:2", speaker: "Bo", text: "Hello." },
          ],
        },
        {
          // The first message has no timestamp, so the session has no date.
          index: 2,
          turns: [
            { id: "D2:1", speaker: "Ann", text: "Tuesday now." },
            {
              id: "D2:2",
              speaker: "Bo",
              text: "Still Tuesday.",
              timestamp: "2024-05-07T10:00:00Z",
            },
          ],
        },
        { index: 3, turns: [{ id: "D3:1", speaker: "Cy", text: "Monday again?" }] },
      ],
    });
  });

  it("is one session without `session` fields; takes ids, CRLF, a BOM, numbers as session values", () => {
    const one = loadJsonl(lines({ speaker: "A", text: "1" }, { speaker: "B", text: "2" }));
    expect(one.conversation.id).toBe("conversation");
    expect(one.conversation.sessions).toHaveLength(1);

    const text =
      "\uFEFF" +
      [
        JSON.stringify({ id: "m-1", speaker: "A", text: "x", session: 2 }),
        JSON.stringify({ id: "m-2", speaker: "B", text: "y", session: "2" }),
        JSON.stringify({ speaker: "A", text: "z", session: 3, extra: true }),
      ].join("\r\n");
    const { conversation } = loadJsonl(text);
    expect(conversation.sessions.map((s) => s.turns.map((t) => t.id))).toEqual([
      ["m-1", "m-2"],
      ["D2:1"],
    ]);
    expect(conversation.sessions[0].turns[1].text).toBe("y"); // no stray \r
  });

  describe("malformed input is conversation_invalid naming the line", () => {
    const cases: [name: string, text: string, message: string][] = [
      [
        "text of the wrong type",
        `${lines({ speaker: "A", text: "ok" })}\n\n${lines({ speaker: "B", text: 17 })}`,
        "line 3 of the JSONL: text must be a string, got a number",
      ],
      [
        "a missing speaker",
        lines({ speaker: "A", text: "ok" }, { text: "who?" }),
        "line 2 of the JSONL: speaker is missing (expected a string)",
      ],
      [
        "an empty speaker",
        lines({ speaker: " ", text: "ok" }),
        "line 1 of the JSONL: speaker must not be empty",
      ],
      [
        "a timestamp of the wrong type",
        lines({ speaker: "A", text: "ok", timestamp: 1715000000 }),
        "line 1 of the JSONL: timestamp must be a string, got a number",
      ],
      [
        "a session that is an object",
        lines({ speaker: "A", text: "ok", session: { n: 1 } }),
        "line 1 of the JSONL: session must be a string or a number, got an object",
      ],
      [
        "a line that is an array",
        `${lines({ speaker: "A", text: "ok" })}\n["B", "hi"]`,
        "line 2 of the JSONL must be an object, got an array",
      ],
      [
        "a line that is not JSON",
        `${lines({ speaker: "A", text: "ok" })}\n{"speaker": "B", "text": "hi"`,
        "line 2 of the JSONL is not valid JSON at column 30",
      ],
      [
        "a line with a stray comma",
        `{"speaker": "A",, "text": "ok"}`,
        "line 1 of the JSONL is not valid JSON at column 17",
      ],
      [
        "a repeated id",
        lines(
          { id: "x", speaker: "A", text: "1" },
          { speaker: "B", text: "2" },
          { id: "x", speaker: "A", text: "3" },
        ),
        'line 3 of the JSONL: id "x" repeats the id of line 1',
      ],
      [
        "a given id equal to a generated one",
        lines({ id: "D1:2", speaker: "A", text: "1" }, { speaker: "B", text: "2" }),
        'line 2 of the JSONL: id "D1:2" (generated) repeats the id of line 1',
      ],
      [
        "an empty id",
        lines({ id: "", speaker: "A", text: "1" }),
        "line 1 of the JSONL: id must not be empty",
      ],
      ["no messages", "\n  \n", "JSONL has no turns"],
    ];
    it.each(cases)("%s", (_, text, message) => {
      const error = thrown(() => loadJsonl(text));
      expect(error.code).toBe("conversation_invalid");
      expect(error.message).toContain(message);
    });
  });
});

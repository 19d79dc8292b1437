import { describe, expect, it } from "vitest";
import { conversationFromMessages } from "./messages";

describe("conversationFromMessages", () => {
  it("opens sessions where `session` changes, dates them by their first timestamp, and generates ids", () => {
    const { conversation, cursor } = conversationFromMessages("c", [
      { speaker: "Ann", text: "Hi!", session: "mon" },
      { speaker: "Bo", text: "Hello.", timestamp: "t0" },
      { speaker: "Ann", text: "Back.", session: 2, timestamp: "t1" },
      { id: "m9", speaker: "Bo", text: "Yes.", session: "2" },
    ]);
    expect(conversation.sessions.map((s) => [s.index, s.date, s.turns.map((t) => t.id)])).toEqual([
      [1, undefined, ["D1:1", "D1:2"]],
      [2, "t1", ["D2:1", "m9"]],
    ]);
    expect(conversation.speakers).toEqual(["Ann", "Bo"]);
    expect(cursor).toEqual({ key: "2", index: 2, turns: 2 });
  });

  it("continues an earlier transcript: its last session, then new ones, numbering on", () => {
    const whole = conversationFromMessages("c", [
      { speaker: "Ann", text: "1", session: "a" },
      { speaker: "Bo", text: "2" },
      { speaker: "Ann", text: "3" },
      { speaker: "Bo", text: "4", session: "b" },
      { speaker: "Ann", text: "5" },
    ]);
    const head = conversationFromMessages("c", [
      { speaker: "Ann", text: "1", session: "a" },
      { speaker: "Bo", text: "2" },
    ]);
    const tail = conversationFromMessages(
      "c",
      [
        { speaker: "Ann", text: "3" },
        { speaker: "Bo", text: "4", session: "b" },
        { speaker: "Ann", text: "5" },
      ],
      { after: head.cursor },
    );
    expect(tail.conversation.sessions.map((s) => [s.index, s.turns.map((t) => t.id)])).toEqual([
      [1, ["D1:3"]],
      [2, ["D2:1", "D2:2"]],
    ]);
    expect(tail.cursor).toEqual(whole.cursor);
    // A continued session keeps the date the earlier part gave it: the tail's first session has none.
    const dated = conversationFromMessages(
      "c",
      [{ speaker: "Ann", text: "late", timestamp: "t9" }],
      { after: { key: "a", index: 1, turns: 2 } },
    );
    expect(dated.conversation.sessions[0].date).toBeUndefined();
  });

  it("names the message at fault", () => {
    const bad = (f: () => unknown, message: string) =>
      expect(f).toThrow(expect.objectContaining({ code: "conversation_invalid", message }));
    bad(
      () => conversationFromMessages("c", [{ speaker: " ", text: "x" }]),
      "messages[0]: speaker must be a non-empty string",
    );
    bad(
      () =>
        conversationFromMessages("c", [
          { id: "x", speaker: "A", text: "1" },
          { id: "x", speaker: "B", text: "2" },
        ]),
      'messages[1]: id "x" repeats the id of messages[0]',
    );
    bad(
      () =>
        conversationFromMessages("c", [{ speaker: "A", text: "1" }], {
          after: { index: 1, turns: 1 },
          usedIds: new Set(["D1:2"]),
        }),
      'messages[0]: id "D1:2" (generated) repeats an id of the earlier transcript',
    );
    bad(() => conversationFromMessages("c", []), "the transcript has no turns");
  });
});

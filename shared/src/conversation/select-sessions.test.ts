import { describe, expect, it } from "vitest";
import type { Conversation } from "./conversation";
import { selectSessions } from "./select-sessions";

const conversation: Conversation = {
  id: "c",
  speakers: ["A"],
  sessions: [1, 2, 3, 5].map((index) => ({
    index,
    turns: [{ id: `D${index}:1`, speaker: "A", text: "hi" }],
  })),
};

describe("selectSessions", () => {
  it("keeps the sessions numbered in the range", () => {
    const indices = (range: string) =>
      selectSessions(conversation, range).sessions.map((s) => s.index);
    expect(indices("1-2")).toEqual([1, 2]);
    expect(indices("3")).toEqual([3]);
    expect(indices("2-")).toEqual([2, 3, 5]);
    expect(indices(" 3 - 9 ")).toEqual([3, 5]);
  });

  it("refuses ranges that are malformed or empty", () => {
    for (const bad of ["", "a-b", "0-2", "3-1", "4", "6-"])
      expect(() => selectSessions(conversation, bad), bad).toThrow(
        expect.objectContaining({ code: "invalid_argument" }),
      );
  });
});

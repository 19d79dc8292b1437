import { describe, expect, it } from "vitest";
import { numberedSessionKeys } from "./numbered-sessions";

describe("numberedSessionKeys", () => {
  it("orders session_N keys by N as a number and skips other keys", () => {
    const object = {
      speaker_a: "A",
      session_10: [],
      session_10_date_time: "x",
      session_2: [],
      events_session_2: {},
      session_1: [],
      session_x: [],
      session_02b: [],
    };
    expect(numberedSessionKeys(object)).toEqual([
      { index: 1, key: "session_1" },
      { index: 2, key: "session_2" },
      { index: 10, key: "session_10" },
    ]);
  });
});

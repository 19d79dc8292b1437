import { describe, expect, it } from "vitest";
import { thrown } from "../testing";
import type { Conversation } from "./conversation";
import { recentTurns } from "./recent-turns";
import { renderContext } from "./render-context";

/** Words as tokens: enough for a monotone count. */
const words = (text: string): number => text.split(/\s+/).filter(Boolean).length;

const conversation: Conversation = {
  id: "c",
  speakers: ["Ann", "Bo"],
  sessions: [1, 2, 3].map((s) => ({
    index: s,
    date: `day ${s}`,
    turns: [1, 2, 3].map((t) => ({
      id: `D${s}:${t}`,
      speaker: t % 2 ? "Ann" : "Bo",
      text: "one two three",
    })),
  })),
};
const ids = (c: Conversation) => c.sessions.flatMap((s) => s.turns.map((t) => t.id));

describe("recentTurns", () => {
  it("keeps the longest suffix of whole turns that fits, each in its dated session", () => {
    const all = ids(conversation);
    // The last n turns, written out by hand: sessions cut from the front.
    const lastTurns = (n: number): Conversation => {
      let skip = all.length - n;
      const sessions = conversation.sessions.flatMap((s) => {
        const drop = Math.min(skip, s.turns.length);
        skip -= drop;
        return drop === s.turns.length ? [] : [{ ...s, turns: s.turns.slice(drop) }];
      });
      return { ...conversation, sessions };
    };
    for (let n = 1; n <= all.length; n++) {
      const size = words(renderContext(lastTurns(n)));
      expect(ids(recentTurns(conversation, size, words))).toEqual(all.slice(all.length - n));
      expect(ids(recentTurns(conversation, size - 1, words))).toEqual(
        all.slice(all.length - n + 1),
      );
    }
    expect(recentTurns(conversation, 1e9, words)).toEqual(conversation);
    const last4 = recentTurns(conversation, words(renderContext(lastTurns(4))), words);
    expect(ids(last4)).toEqual(["D2:3", "D3:1", "D3:2", "D3:3"]);
    expect(last4.sessions.map((s) => s.date)).toEqual(["day 2", "day 3"]);
    expect(last4.id).toBe("c");
    expect(last4.speakers).toEqual(["Ann", "Bo"]);
  });

  it("keeps nothing when not even the last turn fits, and refuses a negative budget", () => {
    expect(recentTurns(conversation, 3, words).sessions).toEqual([]);
    expect(thrown(() => recentTurns(conversation, -1, words))).toMatchObject({
      code: "invalid_argument",
    });
  });
});

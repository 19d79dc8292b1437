import { describe, expect, it } from "vitest";
import { benchFile, NEEDS_BENCH_DATA, thrown } from "../testing";
import type { Conversation } from "./conversation";
import { cutToSessions } from "./cut-to-sessions";
import { loadLocomo } from "./locomo";
import { renderContext } from "./render-context";

/** Words as tokens: enough for a monotone count. */
const words = (text: string): number => text.split(/\s+/).filter(Boolean).length;

const conversation: Conversation = {
  id: "c",
  speakers: ["Ann", "Bo"],
  sessions: [1, 2, 3, 4, 5].map((s) => ({
    index: s,
    date: `day ${s}`,
    turns: [
      { id: `D${s}:1`, speaker: "Ann", text: "one two three" },
      { id: `D${s}:2`, speaker: "Bo", text: "four five" },
    ],
  })),
};

describe("cutToSessions", () => {
  const sizes = [0, 1, 2, 3, 4, 5].map((n) =>
    words(renderContext({ ...conversation, sessions: conversation.sessions.slice(0, n) })),
  );

  it("keeps the longest prefix of whole sessions that fits", () => {
    for (let n = 0; n <= 5; n++) {
      // Exactly the size of n sessions keeps n; one token less keeps n - 1.
      expect(cutToSessions(conversation, sizes[n], words).sessions).toHaveLength(n);
      if (n > 0)
        expect(cutToSessions(conversation, sizes[n] - 1, words).sessions).toHaveLength(n - 1);
    }
    expect(cutToSessions(conversation, 1e9, words)).toEqual(conversation);
    expect(cutToSessions(conversation, 0, words).sessions).toEqual([]);
  });

  it("returns a conversation with the same id and speakers, and uses the render options", () => {
    const kept = cutToSessions(conversation, sizes[2], words);
    expect(kept.id).toBe("c");
    expect(kept.speakers).toEqual(["Ann", "Bo"]);
    expect(kept.sessions.map((s) => s.index)).toEqual([1, 2]);
    // Without header and dates each session costs fewer tokens, so more of them fit.
    expect(
      cutToSessions(conversation, sizes[2], words, { header: "", dates: false }).sessions.length,
    ).toBeGreaterThan(2);
  });

  it("calls countTokens about log2(sessions) + 2 times", () => {
    const many: Conversation = {
      ...conversation,
      sessions: Array.from({ length: 1000 }, (_, i) => ({
        ...conversation.sessions[0],
        index: i + 1,
      })),
    };
    let calls = 0;
    const counting = (text: string): number => {
      calls++;
      return words(text);
    };
    const kept = cutToSessions(many, 5000, counting);
    expect(words(renderContext(kept))).toBeLessThanOrEqual(5000);
    expect(
      words(renderContext({ ...many, sessions: many.sessions.slice(0, kept.sessions.length + 1) })),
    ).toBeGreaterThan(5000);
    expect(calls).toBeLessThanOrEqual(12);
  });

  it("rejects a negative or NaN maximum", () => {
    for (const max of [-1, Number.NaN])
      expect(thrown(() => cutToSessions(conversation, max, words)).code).toBe("invalid_argument");
  });

  const dev = benchFile("locomo", "locomo-dev2.json");
  it.skipIf(!dev)(`cuts conv-26 at a session boundary ${NEEDS_BENCH_DATA}`, async () => {
    const { conversation: conv26 } = loadLocomo(await (dev as NonNullable<typeof dev>).text());
    const chars = (text: string): number => text.length;
    const full = renderContext(conv26).length;
    const kept = cutToSessions(conv26, Math.floor(full / 2), chars);
    expect(kept.sessions.length).toBeGreaterThan(0);
    expect(kept.sessions.length).toBeLessThan(19);
    expect(renderContext(kept).length).toBeLessThanOrEqual(full / 2);
    expect(kept.sessions).toEqual(conv26.sessions.slice(0, kept.sessions.length));
  });
});

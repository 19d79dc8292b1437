import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { benchFile, NEEDS_BENCH_DATA, thrown } from "../testing";
import type { Conversation, Session } from "./conversation";
import { loadLocomo } from "./locomo";
import { segmentWindows } from "./segment-windows";

/** Sessions of the given sizes, turns `D<s>:<t>` alternating between Ann and Bo. */
function conversationOf(sizes: number[]): Conversation {
  const sessions: Session[] = sizes.map((size, s) => ({
    index: s + 1,
    turns: Array.from({ length: size }, (_, t) => ({
      id: `D${s + 1}:${t + 1}`,
      speaker: t % 2 ? "Bo" : "Ann",
      text: `s${s + 1}t${t + 1}`,
    })),
  }));
  return { id: "c", speakers: ["Ann", "Bo"], sessions };
}

describe("segmentWindows", () => {
  it("cuts windows of 4 turns across session boundaries, the last one shorter", () => {
    const conversation = conversationOf([3, 0, 4, 2]);
    const windows = segmentWindows(conversation);
    expect(windows.map((w) => w.turnIds)).toEqual([
      ["D1:1", "D1:2", "D1:3", "D3:1"],
      ["D3:2", "D3:3", "D3:4", "D4:1"],
      ["D4:2"],
    ]);
    expect(windows.map((w) => w.index)).toEqual([0, 1, 2]);
    expect(windows[0].text).toBe(
      'Ann said, "s1t1"\nBo said, "s1t2"\nAnn said, "s1t3"\nAnn said, "s3t1"',
    );
    expect(windows[2].text).toBe('Bo said, "s4t2"');
  });

  it("renders captions in the window text", () => {
    const conversation: Conversation = {
      id: "c",
      speakers: ["Ann"],
      sessions: [
        {
          index: 1,
          turns: [{ id: "a", speaker: "Ann", text: "Look", caption: "a photo of a cat" }],
        },
      ],
    };
    expect(segmentWindows(conversation, 2)[0].text).toBe(
      'Ann said, "Look" [shares an image: a photo of a cat]',
    );
  });

  it("covers every turn once, in order, in windows of w (property)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.nat({ max: 9 }), { maxLength: 8 }),
        fc.integer({ min: 1, max: 7 }),
        (sizes, w) => {
          const conversation = conversationOf(sizes);
          const windows = segmentWindows(conversation, w);
          const ids = conversation.sessions.flatMap((s) => s.turns.map((t) => t.id));
          expect(windows.flatMap((x) => x.turnIds)).toEqual(ids);
          expect(windows).toHaveLength(Math.ceil(ids.length / w));
          windows.forEach((x, i) => {
            expect(x.index).toBe(i);
            expect(x.turnIds.length).toBe(
              i < windows.length - 1 ? w : ids.length - w * (windows.length - 1),
            );
            expect(x.text.split("\n")).toHaveLength(x.turnIds.length);
          });
        },
      ),
      { seed: 11 },
    );
  });

  it("rejects a window size that is not a positive integer", () => {
    for (const w of [0, -1, 2.5, Number.NaN]) {
      const error = thrown(() => segmentWindows(conversationOf([2]), w));
      expect(error.code).toBe("invalid_argument");
      expect(error.message).toContain("window size must be a positive integer");
    }
  });

  const dev = benchFile("locomo", "locomo-dev2.json");
  it.skipIf(!dev)(`cuts conv-26 into 105 windows ${NEEDS_BENCH_DATA}`, async () => {
    const { conversation } = loadLocomo(await (dev as NonNullable<typeof dev>).text(), {
      sampleId: "conv-26",
    });
    const windows = segmentWindows(conversation);
    expect(windows).toHaveLength(Math.ceil(419 / 4));
    expect(windows[0].turnIds).toEqual(["D1:1", "D1:2", "D1:3", "D1:4"]);
    expect(windows[0].text.split("\n")[0]).toBe(
      'Caroline said, "Hey Mel! Good to see you! How have you been?"',
    );
    expect(windows.at(-1)?.turnIds).toHaveLength(3);
  });
});

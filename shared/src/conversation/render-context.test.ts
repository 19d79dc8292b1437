import { describe, expect, it } from "vitest";
import { benchFile, NEEDS_BENCH_DATA } from "../testing";
import type { Conversation } from "./conversation";
import { loadLocomo } from "./locomo";
import { loadRealtalk } from "./realtalk";
import { defaultContextHeader, renderContext, renderContinuation } from "./render-context";

const conversation: Conversation = {
  id: "c",
  speakers: ["Caroline", "Melanie"],
  sessions: [
    {
      index: 1,
      date: "1:56 pm on 8 May, 2023",
      turns: [
        { id: "D1:1", speaker: "Caroline", text: "Hey Mel!" },
        { id: "D1:2", speaker: "Melanie", text: "Hi! Look.", caption: "a photo of a sunset" },
      ],
    },
    { index: 2, date: "never shown", turns: [] },
    { index: 3, turns: [{ id: "D3:1", speaker: "Caroline", text: "No date here." }] },
  ],
};

describe("renderContext", () => {
  it("writes the header, then each session's DATE line and turn lines", () => {
    expect(renderContext(conversation)).toBe(
      [
        "Below is a conversation between Caroline and Melanie. Each session starts with its date.",
        "",
        "DATE: 1:56 pm on 8 May, 2023",
        'Caroline said, "Hey Mel!"',
        'Melanie said, "Hi! Look." [shares an image: a photo of a sunset]',
        "",
        'Caroline said, "No date here."',
      ].join("\n"),
    );
  });

  it("takes a header of its own, or none, and can leave dates out", () => {
    expect(renderContext(conversation, { header: "Chat log:" }).split("\n\n")[0]).toBe("Chat log:");
    expect(renderContext(conversation, { header: "" }).startsWith("DATE: 1:56 pm")).toBe(true);
    const undated = renderContext(conversation, { dates: false });
    expect(undated).not.toContain("DATE:");
    expect(undated.split("\n")[0]).toBe("Below is a conversation between Caroline and Melanie.");
  });

  it("names one, two or more speakers in the default header", () => {
    const with_ = (speakers: string[]): string =>
      defaultContextHeader({ id: "c", speakers, sessions: [] });
    expect(with_([])).toBe("Below is a conversation.");
    expect(with_(["Ann"])).toBe("Below is a conversation with Ann.");
    expect(with_(["Ann", "Bo"])).toBe("Below is a conversation between Ann and Bo.");
    expect(with_(["Ann", "Bo", "Cy"])).toBe("Below is a conversation between Ann, Bo and Cy.");
  });

  const dev = benchFile("locomo", "locomo-dev2.json");
  it.skipIf(!dev)(`renders conv-26 ${NEEDS_BENCH_DATA}`, async () => {
    const { conversation: conv26 } = loadLocomo(await (dev as NonNullable<typeof dev>).text());
    const text = renderContext(conv26);
    const lines = text.split("\n");
    expect(lines.slice(0, 4)).toEqual([
      "Below is a conversation between Caroline and Melanie. Each session starts with its date.",
      "",
      "DATE: 1:56 pm on 8 May, 2023",
      'Caroline said, "Hey Mel! Good to see you! How have you been?"',
    ]);
    expect(lines.filter((l) => l.startsWith("DATE: "))).toHaveLength(19);
    expect(lines.filter((l) => / said, "/.test(l))).toHaveLength(419);
    expect(lines.filter((l) => l.includes(" [shares an image: "))).toHaveLength(116);
  });

  const chat1 = benchFile("realtalk", "Chat_1_Emi_Elise.json");
  it.skipIf(!chat1)(`renders Chat_1_Emi_Elise ${NEEDS_BENCH_DATA}`, async () => {
    const { conversation: chat } = loadRealtalk(await (chat1 as NonNullable<typeof chat1>).text());
    const lines = renderContext(chat).split("\n");
    expect(lines.slice(0, 4)).toEqual([
      "Below is a conversation between Emi and elise. Each session starts with its date.",
      "",
      "DATE: 29.12.2023, 22:42:04",
      'Emi said, "Hey! How are you?"',
    ]);
    expect(lines.filter((l) => / said, "/.test(l))).toHaveLength(476);
  });
});

describe("renderContinuation", () => {
  it("appends later sessions as rendering the whole conversation would, whether the first continues a session or not", () => {
    const sessions = [
      {
        index: 1,
        date: "d1",
        turns: [
          { id: "a", speaker: "Caroline", text: "one" },
          { id: "b", speaker: "Melanie", text: "two" },
        ],
      },
      {
        index: 2,
        date: "d2",
        turns: [
          { id: "c", speaker: "Caroline", text: "three" },
          { id: "d", speaker: "Melanie", text: "four" },
        ],
      },
      { index: 3, turns: [{ id: "e", speaker: "Caroline", text: "five" }] },
    ];
    const whole: Conversation = { id: "c", speakers: ["Caroline", "Melanie"], sessions };
    const text = renderContext(whole);
    // Split between sessions, and inside one (session 2 goes on after the head's last turn).
    expect(
      renderContext({ ...whole, sessions: sessions.slice(0, 1) }) +
        renderContinuation({ sessions: sessions.slice(1) }, { continues: false }),
    ).toBe(text);
    const head = [sessions[0], { ...sessions[1], turns: sessions[1].turns.slice(0, 1) }];
    const tail = [{ index: 2, turns: sessions[1].turns.slice(1) }, sessions[2]];
    expect(
      renderContext({ ...whole, sessions: head }) +
        renderContinuation({ sessions: tail }, { continues: true }),
    ).toBe(text);
  });
});

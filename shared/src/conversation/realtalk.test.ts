import { describe, expect, it } from "vitest";
import { benchFile, benchFiles, NEEDS_BENCH_DATA, thrown } from "../testing";
import { loadRealtalk } from "./realtalk";

type Json = Record<string, unknown>;

function message(
  dia_id: string,
  speaker: string,
  clean_text: string,
  date_time: string,
  extra: Json = {},
): Json {
  return { clean_text, speaker, date_time, img_file: [], img_url: [], dia_id, ...extra };
}

/** A small file in the REALTALK schema (session_10 listed before session_2 on purpose). */
function chat(): Json {
  return {
    name: { speaker_1: "Fahim Khan", speaker_2: "elise" },
    session_1: [
      message("D1:1", "Fahim Khan", "Hey! How are you?", "29.12.2023, 22:42:04"),
      message("D1:2", "elise", "Hi, I’m doing good", "30.12.2023, 00:32:20", {
        img_file: ["00000021-PHOTO.jpg"],
        blip_caption: "there is a stream running through a forest",
      }),
    ],
    events_session_1: { agent_a: [], agent_b: [] },
    session_10: [message("D10:1", "elise", "Tenth.", "10.01.2024, 02:20:59")],
    session_2: [message("D2:1", "Fahim Khan", "Second.", "30.12.2023, 22:21:48")],
    session_1_date_time: "29.12.2023, 22:42:04",
    session_2_date_time: "30.12.2023, 22:21:48",
    session_10_date_time: "10.01.2024, 02:20:59",
    qa: [
      {
        question: "Where does Fahim work?",
        answer: "UCLA",
        evidence: ["D1:2", "D12:3-D12:5"],
        category: 1,
      },
      {
        question: "When did Elise go out?",
        answer: "30 December, 2023",
        evidence: ["D1:2"],
        category: 2,
      },
    ],
  };
}

function broken(edit: (c: Json & { name: Json; qa: Json[] }) => void): Json {
  const c = structuredClone(chat()) as Json & { name: Json; qa: Json[] };
  edit(c);
  return c;
}

describe("loadRealtalk", () => {
  it("reads sessions in numeric order with timestamps, captions and QA items", () => {
    const { conversation, qa } = loadRealtalk(JSON.stringify(chat()));
    expect(conversation.id).toBe("realtalk-fahim-khan-elise");
    expect(conversation.speakers).toEqual(["Fahim Khan", "elise"]);
    expect(conversation.sessions.map((s) => [s.index, s.date])).toEqual([
      [1, "29.12.2023, 22:42:04"],
      [2, "30.12.2023, 22:21:48"],
      [10, "10.01.2024, 02:20:59"],
    ]);
    expect(conversation.sessions[0].turns).toEqual([
      {
        id: "D1:1",
        speaker: "Fahim Khan",
        text: "Hey! How are you?",
        timestamp: "29.12.2023, 22:42:04",
      },
      {
        id: "D1:2",
        speaker: "elise",
        text: "Hi, I’m doing good",
        caption: "there is a stream running through a forest",
        timestamp: "30.12.2023, 00:32:20",
      },
    ]);
    // Evidence stays verbatim, ranges included.
    expect(qa).toEqual([
      {
        question: "Where does Fahim work?",
        answer: "UCLA",
        evidence: ["D1:2", "D12:3-D12:5"],
        category: 1,
      },
      {
        question: "When did Elise go out?",
        answer: "30 December, 2023",
        evidence: ["D1:2"],
        category: 2,
      },
    ]);
  });

  it("takes an id, a parsed value, and `text` when a message has no `clean_text`", () => {
    const c = broken((c) => {
      const turn = (c.session_2 as Json[])[0];
      delete turn.clean_text;
      turn.text = "Plain text.";
    });
    const { conversation } = loadRealtalk(c, { id: "chat-1" });
    expect(conversation.id).toBe("chat-1");
    expect(conversation.sessions[1].turns[0].text).toBe("Plain text.");
  });

  describe("malformed input is conversation_invalid naming the place", () => {
    const cases: [name: string, input: unknown, message: string][] = [
      [
        "a speaker of the wrong type",
        broken((c) => void ((c.session_10 as Json[])[0].speaker = null)),
        "REALTALK JSON: session_10[0].speaker must be a string, got null",
      ],
      [
        "no text at all",
        broken((c) => void delete (c.session_1 as Json[])[1].clean_text),
        "session_1[1].clean_text is missing (expected a string)",
      ],
      [
        "a text that is a number",
        broken((c) => void ((c.session_1 as Json[])[1].clean_text = 5)),
        "session_1[1].clean_text must be a string, got a number",
      ],
      [
        "a timestamp that is a number",
        broken((c) => void ((c.session_1 as Json[])[0].date_time = 1703889724)),
        "session_1[0].date_time must be a string, got a number",
      ],
      [
        "a missing name",
        broken((c) => void Reflect.deleteProperty(c, "name")),
        "REALTALK JSON: name is missing (expected an object)",
      ],
      [
        "a missing speaker_2",
        broken((c) => void delete c.name.speaker_2),
        "name.speaker_2 is missing",
      ],
      [
        "a session that is a string",
        broken((c) => void (c.session_2 = "D2:1")),
        "session_2 must be an array, got a string",
      ],
      [
        "a QA question that is missing",
        broken((c) => void delete c.qa[1].question),
        "qa[1].question is missing",
      ],
      [
        "a QA category that is a boolean",
        broken((c) => void (c.qa[0].category = true)),
        "qa[0].category must be a number or a string, got a boolean",
      ],
      ["a document that is a list", [chat()], "REALTALK JSON must be an object, got an array"],
      [
        "bad JSON",
        '{\n  "name": {"speaker_1": "A",, "speaker_2": "B"}\n}',
        "REALTALK JSON is not valid JSON at line 2, column 29",
      ],
      [
        "no turns",
        { name: { speaker_1: "A", speaker_2: "B" }, qa: [] },
        "REALTALK JSON has no turns",
      ],
    ];
    it.each(cases)("%s", (_, input, message) => {
      const error = thrown(() => loadRealtalk(input));
      expect(error.code).toBe("conversation_invalid");
      expect(error.message).toContain(message);
    });
  });
});

describe("REALTALK data", () => {
  // Turn and QA counts of the ten files, counted independently of this loader.
  const expected: Record<string, { turns: number; qa: number; speakers: [string, string] }> = {
    "Chat_1_Emi_Elise.json": { turns: 476, qa: 70, speakers: ["Emi", "elise"] },
    "Chat_2_Kevin_Elise.json": { turns: 453, qa: 73, speakers: ["Kevin", "elise"] },
    "Chat_3_Kevin_Paola.json": { turns: 422, qa: 71, speakers: ["Kevin", "Paola"] },
    "Chat_4_Emi_Paola.json": { turns: 410, qa: 70, speakers: ["Emi", "Paola"] },
    "Chat_5_Nicolas_Nebraas.json": { turns: 1548, qa: 76, speakers: ["Nicolas", "Nebraas"] },
    "Chat_6_Vanessa_Nicolas.json": { turns: 1511, qa: 70, speakers: ["Nicolas", "Vanessa"] },
    "Chat_7_Nebraas_Vanessa.json": { turns: 1162, qa: 72, speakers: ["Vanessa", "Nebraas"] },
    "Chat_8_Akib_Muhhamed.json": { turns: 1044, qa: 71, speakers: ["Akib", "Muhhamed"] },
    "Chat_9_Fahim_Akib.json": { turns: 1256, qa: 70, speakers: ["Akib", "Fahim Khan"] },
    "Chat_10_Fahim_Muhhamed.json": { turns: 662, qa: 85, speakers: ["Fahim Khan", "Muhhamed"] },
  };

  const files = benchFiles("realtalk");
  it.skipIf(files.length === 0)(
    `loads all ten REALTALK conversations ${NEEDS_BENCH_DATA}`,
    async () => {
      expect(files.map((f) => f.name)).toEqual(Object.keys(expected));
      for (const file of files) {
        const { conversation, qa } = loadRealtalk(await file.text());
        const want = expected[file.name];
        const turns = conversation.sessions.flatMap((s) => s.turns);
        expect(turns, file.name).toHaveLength(want.turns);
        expect(qa, file.name).toHaveLength(want.qa);
        expect(conversation.speakers, file.name).toEqual(want.speakers);
        expect(new Set(turns.map((t) => t.id)).size, file.name).toBe(turns.length);
        expect(
          conversation.sessions.every((s) => s.date === s.turns[0]?.timestamp),
          file.name,
        ).toBe(true);
        expect(new Set(qa.map((q) => q.category)), file.name).toEqual(new Set([1, 2, 3]));
        expect(
          turns.some((t) => t.caption !== undefined),
          file.name,
        ).toBe(true);
      }
    },
  );

  const first = benchFile("realtalk", "Chat_1_Emi_Elise.json");
  it.skipIf(!first)(`reads Chat_1_Emi_Elise.json in detail ${NEEDS_BENCH_DATA}`, async () => {
    const { conversation, qa } = loadRealtalk(await (first as NonNullable<typeof first>).text());
    expect(conversation.id).toBe("realtalk-emi-elise");
    expect(conversation.sessions).toHaveLength(18);
    expect(conversation.sessions[0].turns[0]).toEqual({
      id: "D1:1",
      speaker: "Emi",
      text: "Hey! How are you?",
      timestamp: "29.12.2023, 22:42:04",
    });
    expect(
      conversation.sessions.flatMap((s) => s.turns).filter((t) => t.caption !== undefined),
    ).toHaveLength(32);
    expect(qa[0]).toEqual({
      question: "What are Kate's hobbies?",
      answer: "Cooking, skiing, hiking",
      evidence: ["D1:6", "D1:40", "D3:69"],
      category: 1,
    });
  });
});

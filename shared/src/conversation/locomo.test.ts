import { describe, expect, it } from "vitest";
import { benchFile, NEEDS_BENCH_DATA, thrown } from "../testing";
import { loadLocomo, locomoSampleIds } from "./locomo";

type Json = Record<string, unknown>;

/** A small sample in the locomo10.json schema, keys deliberately out of order (session_10 before session_2). */
function sample(id = "conv-x"): Json {
  return {
    qa: [
      { question: "What did Ann adopt?", answer: "a cat", evidence: ["D2:1"], category: 4 },
      { question: "When did Bo move?", answer: 2022, evidence: ["D1:2; D10:1"], category: 2 },
      {
        question: "What did Bo adopt?",
        evidence: ["D2:1"],
        category: 5,
        adversarial_answer: "a cat",
      },
    ],
    conversation: {
      speaker_a: "Ann",
      speaker_b: "Bo",
      session_10_date_time: "9:00 am on 1 July, 2023",
      session_10: [{ speaker: "Bo", dia_id: "D10:1", text: "Tenth session." }],
      session_1_date_time: "1:56 pm on 8 May, 2023",
      session_1: [
        { speaker: "Ann", dia_id: "D1:1", text: "Hi Bo!" },
        { speaker: "Bo", dia_id: "D1:2", text: "Hi Ann, I moved in 2022." },
      ],
      session_2: [
        {
          speaker: "Ann",
          img_url: ["https://example.com/cat.jpg"],
          blip_caption: "a photo of a cat on a sofa",
          query: "cat sofa",
          dia_id: "D2:1",
          text: "Meet my new cat!",
        },
      ],
      session_2_date_time: "7:55 pm on 9 June, 2023",
    },
    event_summary: {},
    observation: {},
    session_summary: {},
    sample_id: id,
  };
}

/** `sample()` with `edit` applied to a deep copy. */
function broken(edit: (s: Json & { conversation: Json; qa: Json[] }) => void): Json[] {
  const s = structuredClone(sample()) as Json & { conversation: Json; qa: Json[] };
  edit(s);
  return [s];
}

describe("loadLocomo", () => {
  it("reads sessions in numeric order with dates, captions and QA items", () => {
    const { conversation, qa } = loadLocomo(JSON.stringify([sample()]));
    expect(conversation.id).toBe("conv-x");
    expect(conversation.speakers).toEqual(["Ann", "Bo"]);
    expect(conversation.sessions.map((s) => [s.index, s.date])).toEqual([
      [1, "1:56 pm on 8 May, 2023"],
      [2, "7:55 pm on 9 June, 2023"],
      [10, "9:00 am on 1 July, 2023"],
    ]);
    expect(conversation.sessions[0].turns).toEqual([
      { id: "D1:1", speaker: "Ann", text: "Hi Bo!" },
      { id: "D1:2", speaker: "Bo", text: "Hi Ann, I moved in 2022." },
    ]);
    expect(conversation.sessions[1].turns[0]).toEqual({
      id: "D2:1",
      speaker: "Ann",
      text: "Meet my new cat!",
      caption: "a photo of a cat on a sofa",
    });
    expect(qa).toEqual([
      { question: "What did Ann adopt?", answer: "a cat", evidence: ["D2:1"], category: 4 },
      // A number answer becomes a string; "D1:2; D10:1" is two ids.
      { question: "When did Bo move?", answer: "2022", evidence: ["D1:2", "D10:1"], category: 2 },
      {
        question: "What did Bo adopt?",
        answer: "a cat",
        evidence: ["D2:1"],
        category: 5,
        adversarial: true,
      },
    ]);
  });

  it("selects a sample by id, defaults to the first, and lists the ids", () => {
    const file = JSON.stringify([sample("conv-1"), sample("conv-2")]);
    expect(loadLocomo(file).conversation.id).toBe("conv-1");
    expect(loadLocomo(file, { sampleId: "conv-2" }).conversation.id).toBe("conv-2");
    expect(locomoSampleIds(file)).toEqual(["conv-1", "conv-2"]);
    const error = thrown(() => loadLocomo(file, { sampleId: "conv-9" }));
    expect(error.code).toBe("invalid_argument");
    expect(error.message).toBe('LoCoMo JSON has no sample "conv-9" (it has "conv-1", "conv-2")');
  });

  it("takes a parsed value, and a single sample outside an array", () => {
    expect(loadLocomo([sample()]).conversation.sessions).toHaveLength(3);
    expect(loadLocomo(sample()).conversation.id).toBe("conv-x");
    expect(loadLocomo("\uFEFF" + JSON.stringify([sample()])).conversation.id).toBe("conv-x");
  });

  it("keeps a turn's speaker that the header does not declare", () => {
    const [s] = broken((s) => {
      (s.conversation.session_1 as Json[])[0].speaker = "Cy";
    });
    expect(loadLocomo([s]).conversation.speakers).toEqual(["Ann", "Bo", "Cy"]);
  });

  describe("malformed input is conversation_invalid naming the place", () => {
    const cases: [name: string, input: unknown, message: string][] = [
      [
        "a turn's text of the wrong type",
        broken((s) => {
          s.conversation.session_3 = [0, 1, 2, 3, 4].map((t) => ({
            speaker: "Ann",
            dia_id: `D3:${t + 1}`,
            text: t === 4 ? 7 : "ok",
          }));
        }),
        'LoCoMo sample "conv-x" ([0]): conversation.session_3[4].text must be a string, got a number',
      ],
      [
        "a missing dia_id",
        broken((s) => {
          delete (s.conversation.session_2 as Json[])[0].dia_id;
        }),
        "conversation.session_2[0].dia_id is missing (expected a string)",
      ],
      [
        "a session that is not a list",
        broken((s) => {
          s.conversation.session_2 = { speaker: "Ann" };
        }),
        "conversation.session_2 must be an array, got an object",
      ],
      [
        "a null turn",
        broken((s) => void ((s.conversation.session_1 as unknown[])[1] = null)),
        "conversation.session_1[1] must be an object, got null",
      ],
      [
        "a missing speaker_b",
        broken((s) => void delete s.conversation.speaker_b),
        "conversation.speaker_b is missing",
      ],
      [
        "a date that is not text",
        broken((s) => void (s.conversation.session_1_date_time = 20230508)),
        "conversation.session_1_date_time must be a string, got a number",
      ],
      [
        "a caption that is not text",
        broken((s) => void ((s.conversation.session_2 as Json[])[0].blip_caption = ["x"])),
        "conversation.session_2[0].blip_caption must be a string, got an array",
      ],
      [
        "no conversation",
        broken((s) => void Reflect.deleteProperty(s, "conversation")),
        'LoCoMo sample "conv-x" ([0]): conversation is missing (expected an object)',
      ],
      [
        "a QA item without category",
        broken((s) => void delete s.qa[0].category),
        "qa[0].category is missing (expected a number or a string)",
      ],
      [
        "a QA item without any answer",
        broken((s) => void delete s.qa[0].answer),
        "qa[0].answer is missing (and there is no adversarial_answer)",
      ],
      [
        "an answer that is an object",
        broken((s) => void (s.qa[1].answer = { year: 2022 })),
        "qa[1].answer must be a string or a number, got an object",
      ],
      [
        "an evidence id that is a number",
        broken((s) => void (s.qa[1].evidence = [12])),
        "qa[1].evidence[0] must be a string, got a number",
      ],
      [
        "qa that is not a list",
        broken((s) => void ((s as Json).qa = "none")),
        "qa must be an array, got a string",
      ],
      [
        "a conversation without turns",
        broken((s) => {
          for (const key of Object.keys(s.conversation))
            if (key.startsWith("session_")) delete s.conversation[key];
        }),
        'LoCoMo sample "conv-x" ([0]) has no turns',
      ],
      [
        "a sample without sample_id",
        [sample("a"), { conversation: {} }],
        "LoCoMo JSON [1]: sample_id is missing",
      ],
      [
        "a sample that is not an object",
        [sample("a"), "b"],
        "LoCoMo JSON: [1] must be an object, got a string",
      ],
      ["a document that is not a list", 42, "LoCoMo JSON must be an array, got a number"],
      ["an empty list", [], "LoCoMo JSON has no samples"],
      [
        "bad JSON",
        '[{"sample_id": "c",\n  "conversation": }]',
        "LoCoMo JSON is not valid JSON at line 2, column 19",
      ],
      [
        "truncated JSON",
        '[{"sample_id": "c",\n  "conv',
        "LoCoMo JSON is not valid JSON at line 2, column 8",
      ],
    ];
    it.each(cases)("%s", (_, input, message) => {
      const error = thrown(() => loadLocomo(input));
      expect(error.code).toBe("conversation_invalid");
      expect(error.message).toContain(message);
    });
  });
});

describe("LoCoMo data", () => {
  const dev = benchFile("locomo", "locomo-dev2.json");

  it.skipIf(!dev)(`loads conv-26 and conv-30 of locomo-dev2.json ${NEEDS_BENCH_DATA}`, async () => {
    const text = await (dev as NonNullable<typeof dev>).text();
    const data: unknown = JSON.parse(text);
    expect(locomoSampleIds(data)).toEqual(["conv-26", "conv-30"]);

    const { conversation, qa } = loadLocomo(text); // the first sample
    expect(conversation.id).toBe("conv-26");
    expect(conversation.speakers).toEqual(["Caroline", "Melanie"]);
    expect(conversation.sessions.map((s) => s.index)).toEqual(
      Array.from({ length: 19 }, (_, i) => i + 1),
    );
    expect(conversation.sessions[0].date).toBe("1:56 pm on 8 May, 2023");
    expect(conversation.sessions[18].date).toBe("9:55 am on 22 October, 2023");
    expect(conversation.sessions[0].turns[0]).toEqual({
      id: "D1:1",
      speaker: "Caroline",
      text: "Hey Mel! Good to see you! How have you been?",
    });
    const turns = conversation.sessions.flatMap((s) => s.turns);
    expect(turns).toHaveLength(419);
    expect(turns.filter((t) => t.caption !== undefined)).toHaveLength(116);
    expect(new Set(turns.map((t) => t.id)).size).toBe(turns.length);
    expect(new Set(turns.map((t) => t.speaker))).toEqual(new Set(["Caroline", "Melanie"]));

    expect(qa).toHaveLength(199);
    // 47 adversarial questions (category 5); two of them also have a gold `answer` ("No"), which wins.
    expect(qa.filter((q) => q.category === 5)).toHaveLength(47);
    expect(qa.filter((q) => q.adversarial)).toHaveLength(45);
    expect(qa.every((q) => q.adversarial === undefined || q.category === 5)).toBe(true);
    expect(qa.filter((q) => q.answer === "2022").length).toBeGreaterThan(0); // numbers in the file
    const ids = new Set(turns.map((t) => t.id));
    expect(qa.flatMap((q) => q.evidence).filter((id) => !ids.has(id))).toEqual([]);

    const other = loadLocomo(data, { sampleId: "conv-30" });
    expect(other.conversation.speakers).toEqual(["Jon", "Gina"]);
    expect(other.conversation.sessions.flatMap((s) => s.turns)).toHaveLength(369);
    expect(other.qa).toHaveLength(105);
  });
});

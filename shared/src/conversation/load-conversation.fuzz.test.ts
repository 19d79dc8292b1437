/**
 * Property-based fuzzing of the conversation loaders: whatever the input (any text, any JSON value,
 * documents shaped like LoCoMo, REALTALK and JSONL with arbitrary values in their fields), a loader
 * returns a conversation of plain data or throws `conversation_invalid`, never anything else.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { isEpicacheError } from "../errors";
import type { LoadedConversation } from "./conversation";
import { loadJsonl } from "./jsonl";
import { loadConversation } from "./load-conversation";
import { loadLocomo } from "./locomo";
import { loadRealtalk } from "./realtalk";

/** The outcome of a load: "ok" after checking the result is a well-formed conversation, else the error's code. */
function outcome(load: () => LoadedConversation): string {
  let loaded: LoadedConversation;
  try {
    loaded = load();
  } catch (e) {
    if (isEpicacheError(e)) return e.code;
    return `threw ${(e as Error)?.name}: ${(e as Error)?.message}`;
  }
  const { conversation } = loaded;
  expect(typeof conversation.id).toBe("string");
  expect(Array.isArray(conversation.speakers)).toBe(true);
  for (const s of conversation.sessions) {
    expect(Number.isInteger(s.index)).toBe(true);
    for (const t of s.turns)
      for (const v of [t.id, t.speaker, t.text]) expect(typeof v).toBe("string");
  }
  // Plain data: it round-trips through JSON as is.
  expect(JSON.parse(JSON.stringify(loaded))).toEqual(loaded);
  return "ok";
}

const allowed = ["ok", "conversation_invalid"];

/** Values for a field: mostly plausible, sometimes anything. */
const field = (plausible: fc.Arbitrary<unknown>) =>
  fc.oneof(
    { weight: 30, arbitrary: plausible },
    { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
  );
/** An object with these fields: mostly all of them, sometimes only some. */
const loose = <T extends Record<string, fc.Arbitrary<unknown>>>(model: T) =>
  fc.oneof(
    { weight: 12, arbitrary: fc.record(model) },
    { weight: 1, arbitrary: fc.record(model, { requiredKeys: [] }) },
  );
const speaker = field(fc.constantFrom("Ann", "Bo", "Ann", "Bo", "Cy", "", " ", "Ann\nBo"));
const text = field(
  fc.oneof(
    { weight: 6, arbitrary: fc.string({ minLength: 1, maxLength: 30, unit: "grapheme" }) },
    { weight: 1, arbitrary: fc.constantFrom("", " ", "\n", "\u0000", "\ud800") },
  ),
);
const sessionKey = fc.oneof(
  { weight: 8, arbitrary: fc.nat({ max: 12 }).map((n) => `session_${n}`) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      "session_01",
      "session_-1",
      "session_1.5",
      "session_",
      "session_99999999999999999999",
    ),
  },
);

const locomoTurn = fc.oneof(
  loose({
    speaker,
    dia_id: field(fc.constantFrom("D1:1", "D1:2", "D2:1", "D2:2", "D3:1", "")),
    text,
  }),
  loose({ speaker, dia_id: field(fc.constantFrom("D1:3", "D2:3", "")), text, blip_caption: text }),
);
const locomoSample = loose({
  sample_id: field(fc.constantFrom("conv-1", "conv-2", "")),
  conversation: field(
    fc
      .tuple(
        loose({ speaker_a: speaker, speaker_b: speaker }),
        fc.dictionary(sessionKey, field(fc.array(locomoTurn, { maxLength: 4 })), { maxKeys: 3 }),
        fc.dictionary(
          sessionKey.map((k) => `${k}_date_time`),
          text,
          { maxKeys: 2 },
        ),
      )
      .map(([a, b, c]) => ({ ...a, ...b, ...c })),
  ),
  qa: field(
    fc.array(
      loose({
        question: text,
        answer: field(fc.oneof(fc.string(), fc.integer())),
        evidence: field(fc.array(fc.constantFrom("D1:1", "D2:1", "x"))),
        category: field(fc.integer({ min: 0, max: 6 })),
      }),
      { maxLength: 3 },
    ),
  ),
});
const locomo = fc.oneof(fc.array(locomoSample, { maxLength: 2 }), locomoSample);

const realtalkMessage = fc.oneof(
  loose({
    clean_text: text,
    speaker,
    date_time: text,
    dia_id: field(fc.constantFrom("D1:1", "D1:2", "D2:1", "")),
  }),
  loose({ text, speaker, dia_id: field(fc.constantFrom("D1:3", "D2:2", "")), blip_caption: text }),
);
const realtalk = fc
  .tuple(
    loose({
      name: field(loose({ speaker_1: speaker, speaker_2: speaker })),
      qa: field(
        fc.array(
          loose({
            question: text,
            answer: text,
            evidence: fc.constant(["D1:1"]),
            category: field(fc.integer({ min: 1, max: 3 })),
          }),
          { maxLength: 2 },
        ),
      ),
    }),
    fc.dictionary(sessionKey, field(fc.array(realtalkMessage, { maxLength: 4 })), { maxKeys: 3 }),
  )
  .map(([a, b]) => ({ ...a, ...b }));

const jsonlLine = fc.oneof(
  {
    weight: 12,
    arbitrary: fc
      .oneof(
        loose({ speaker, text }),
        loose({
          speaker,
          text,
          timestamp: text,
          session: field(fc.oneof(fc.string({ maxLength: 3 }), fc.integer({ min: -2, max: 3 }))),
        }),
        loose({ speaker, text, id: field(fc.constantFrom("m1", "m2", "")) }),
      )
      .map((o) => JSON.stringify(o)),
  },
  { weight: 1, arbitrary: fc.string({ maxLength: 20 }) },
  { weight: 1, arbitrary: fc.constantFrom("", "\r", " ", "\uFEFF{}", "{", "null", "[]") },
);
const jsonl = fc.array(jsonlLine, { maxLength: 6 }).map((lines) => lines.join("\n"));

const anyText = fc.oneof(
  fc.string({ maxLength: 200, unit: "binary" }),
  fc.json({ maxDepth: 3 }),
  jsonl,
  locomo.map((v) => JSON.stringify(v)),
  realtalk.map((v) => JSON.stringify(v)),
  // Documents cut short anywhere.
  fc
    .tuple(
      fc.oneof(locomo, realtalk).map((v) => JSON.stringify(v)),
      fc.nat(),
    )
    .map(([s, n]) => s.slice(0, n % (s.length + 1))),
);

const runs = { numRuns: 1000 };

describe("the conversation loaders under fuzzing", () => {
  it("loadConversation: any text is a conversation or conversation_invalid", () => {
    fc.assert(
      fc.property(anyText, (t) => {
        expect(allowed).toContain(outcome(() => loadConversation(t)));
      }),
      runs,
    );
  });

  it("loadJsonl: any text is a conversation or conversation_invalid", () => {
    fc.assert(
      fc.property(fc.oneof(jsonl, anyText), (t) => {
        expect(allowed).toContain(outcome(() => loadJsonl(t, { id: "c" })));
      }),
      runs,
    );
  });

  it("loadLocomo: any value or text is a conversation or conversation_invalid", () => {
    const input = fc.oneof(
      locomo,
      fc.anything({ maxDepth: 3 }),
      anyText,
      locomo.map((v) => JSON.stringify(v)),
    );
    fc.assert(
      fc.property(input, (v) => {
        expect(allowed).toContain(outcome(() => loadLocomo(v)));
      }),
      runs,
    );
  });

  it("loadRealtalk: any value or text is a conversation or conversation_invalid", () => {
    const input = fc.oneof(
      realtalk,
      fc.anything({ maxDepth: 3 }),
      anyText,
      realtalk.map((v) => JSON.stringify(v)),
    );
    fc.assert(
      fc.property(input, (v) => {
        expect(allowed).toContain(outcome(() => loadRealtalk(v)));
      }),
      runs,
    );
  });
});

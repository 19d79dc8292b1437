import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { thrown } from "../testing";
import { jsonSyntaxErrorOffset, lineColumn, parseJsonText, stripBom } from "./parse-json";

describe("parseJsonText", () => {
  it("parses, after a byte-order mark too", () => {
    expect(parseJsonText('{"a": [1, "x", null]}', "doc")).toEqual({ a: [1, "x", null] });
    expect(parseJsonText('\uFEFF{"a": 1}', "doc")).toEqual({ a: 1 });
    expect(stripBom("\uFEFFx")).toBe("x");
    expect(stripBom("x")).toBe("x");
  });

  it("names the line and column of a syntax error", () => {
    const error = thrown(() => parseJsonText('{\n  "a": 1,\n  "b": tru\n}', "my file"));
    expect(error.code).toBe("conversation_invalid");
    expect(error.message).toMatch(/^my file is not valid JSON at line 3, column 11: /);
    expect(error.cause).toBeInstanceOf(SyntaxError);
    expect(thrown(() => parseJsonText("", "empty")).message).toMatch(
      /^empty is not valid JSON at line 1, column 1: /,
    );
  });

  it("lineColumn counts from 1", () => {
    expect(lineColumn("ab\ncd", 0)).toBe("line 1, column 1");
    expect(lineColumn("ab\ncd", 4)).toBe("line 2, column 2");
  });
});

describe("jsonSyntaxErrorOffset", () => {
  it("points at the first offending character", () => {
    const cases: [text: string, offset: number | undefined][] = [
      ['{"a": 1}', undefined],
      [' [1, -2.5e+3, "x\\u00e9\\n", true, false, null] ', undefined],
      ['{"a": }', 6],
      ["[1, 2", 5],
      ["[1 2]", 3],
      ["01", 1],
      ["1.", 2],
      ["-", 1],
      ['"a\tb"', 2], // raw control character in a string
      ['"\\x"', 2],
      ['"\\u12G4"', 5],
      ["{'a': 1}", 1],
      ["{1: 2}", 1],
      ["[1,]", 3],
      ["tru", 3],
      ["nul", 3],
      ["1 2", 2],
      ["", 0],
    ];
    for (const [text, offset] of cases) expect(jsonSyntaxErrorOffset(text), text).toBe(offset);
  });

  it("agrees with JSON.parse on valid JSON and on JSON with one edit", () => {
    const edited = fc
      .tuple(
        fc.json(),
        fc.nat(),
        fc.constantFrom("", ",", "}", "]", '"', ":", "x", "0", "\\", "\n", " "),
        fc.nat({ max: 2 }),
      )
      .map(([json, at, insert, remove]) => {
        const i = json.length === 0 ? 0 : at % json.length;
        return json.slice(0, i) + insert + json.slice(i + remove);
      });
    fc.assert(
      fc.property(fc.oneof(fc.json(), edited), (text) => {
        let valid = true;
        try {
          JSON.parse(text);
        } catch {
          valid = false;
        }
        const offset = jsonSyntaxErrorOffset(text);
        expect(offset === undefined).toBe(valid);
        if (offset !== undefined) {
          expect(offset).toBeGreaterThanOrEqual(0);
          expect(offset).toBeLessThanOrEqual(text.length);
        }
      }),
      { numRuns: 2000, seed: 7 },
    );
  });
});

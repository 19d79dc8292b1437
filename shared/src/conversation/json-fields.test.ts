import { describe, expect, it } from "vitest";
import { thrown } from "../testing";
import {
  childPath,
  describeJson,
  expectArray,
  expectObject,
  fail,
  optionalString,
  requiredString,
} from "./json-fields";

describe("json-fields", () => {
  it("builds paths", () => {
    expect(childPath("", "conversation")).toBe("conversation");
    expect(childPath("conversation", "session_3")).toBe("conversation.session_3");
    expect(childPath("conversation.session_3", 4)).toBe("conversation.session_3[4]");
    expect(childPath("", 0)).toBe("[0]");
    expect(childPath("a", "odd key")).toBe('a["odd key"]');
  });

  it("describes JSON values", () => {
    expect([undefined, null, "x", 1, true, [], {}].map(describeJson)).toEqual([
      "nothing",
      "null",
      "a string",
      "a number",
      "a boolean",
      "an array",
      "an object",
    ]);
  });

  it("reads fields or fails with source, path and problem", () => {
    const object = expectObject({ s: "x", n: 3, z: null }, "src", "");
    expect(requiredString(object, "s", "src", "p")).toBe("x");
    expect(optionalString(object, "z", "src", "p")).toBeUndefined();
    expect(optionalString(object, "absent", "src", "p")).toBeUndefined();
    expect(expectArray([1], "src", "p")).toEqual([1]);

    const cases: [() => unknown, string][] = [
      [() => requiredString(object, "n", "src", "p"), "src: p.n must be a string, got a number"],
      [
        () => requiredString(object, "absent", "src", "p"),
        "src: p.absent is missing (expected a string)",
      ],
      [() => optionalString(object, "n", "src", "p"), "src: p.n must be a string, got a number"],
      [() => expectObject([], "src", "p[2]"), "src: p[2] must be an object, got an array"],
      [() => expectObject(null, "src", ""), "src must be an object, got null"],
      [() => expectArray(undefined, "src", "list"), "src: list is missing (expected an array)"],
      [() => fail("src", "", "is empty"), "src is empty"],
    ];
    for (const [f, message] of cases) {
      const error = thrown(f);
      expect(error.code).toBe("conversation_invalid");
      expect(error.message).toBe(message);
    }
  });
});

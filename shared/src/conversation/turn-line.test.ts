import { describe, expect, it } from "vitest";
import { formatTurnLine } from "./turn-line";

describe("formatTurnLine", () => {
  it('writes `{speaker} said, "{text}"`, with the caption in brackets', () => {
    expect(formatTurnLine({ id: "D1:1", speaker: "Caroline", text: "Hey Mel!" })).toBe(
      'Caroline said, "Hey Mel!"',
    );
    expect(
      formatTurnLine({
        id: "D1:5",
        speaker: "Caroline",
        text: "Look!",
        caption: "a photo of a dog",
      }),
    ).toBe('Caroline said, "Look!" [shares an image: a photo of a dog]');
  });

  it("keeps a turn on one line and quotes as they are", () => {
    const turn = {
      id: "x",
      speaker: "Ann",
      text: 'First line\r\n  second "quoted"\nthird\n',
      caption: "a cat\non a mat",
    };
    expect(formatTurnLine(turn)).toBe(
      'Ann said, "First line second "quoted" third" [shares an image: a cat on a mat]',
    );
    expect(formatTurnLine({ id: "x", speaker: "Ann", text: "", caption: "  " })).toBe(
      'Ann said, ""',
    );
  });
});

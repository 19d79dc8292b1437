import { describe, expect, it } from "vitest";
import { thrown } from "../testing";
import { assembleConversation } from "./assemble-conversation";

describe("assembleConversation", () => {
  it("lists declared speakers first, then others in order of first turn", () => {
    const conversation = assembleConversation(
      "c",
      ["Ann", "Bo"],
      [
        { index: 1, turns: [{ id: "1", speaker: "Cy", text: "a" }] },
        { index: 2, turns: [] },
        {
          index: 3,
          turns: [
            { id: "2", speaker: "Ann", text: "b" },
            { id: "3", speaker: "Di", text: "c" },
          ],
        },
      ],
      "src",
    );
    expect(conversation.id).toBe("c");
    expect(conversation.speakers).toEqual(["Ann", "Bo", "Cy", "Di"]);
    expect(conversation.sessions).toHaveLength(3);
  });

  it("rejects a conversation without turns", () => {
    const error = thrown(() =>
      assembleConversation("c", ["Ann"], [{ index: 1, turns: [] }], "src"),
    );
    expect(error.code).toBe("conversation_invalid");
    expect(error.message).toBe("src has no turns");
  });
});

import { describe, expect, it } from "vitest";
import { BUILD_METHOD_REGISTRY, BUILD_METHODS } from "@epicache/shared";
import type { ChatFrame } from "./chat-frame";
import { PRESS_REGISTRY } from "./registry";

// Making a policy only captures the frame's tokens: a stub frame is enough to see what each entry gives.
const frame: ChatFrame = { open: [1], text: () => [2], close: () => [3], history: () => [2] };

describe("the press registry", () => {
  it("has a policy for every build method and no other, named after its method, null exactly where nothing is evicted", () => {
    expect(Object.keys(PRESS_REGISTRY)).toEqual(BUILD_METHODS);
    for (const m of BUILD_METHODS) {
      const policy = PRESS_REGISTRY[m](frame, "a representative window");
      expect(policy === null, m).toBe(!BUILD_METHOD_REGISTRY[m].budgeted);
      if (policy) expect(policy.name).toBe(m);
    }
  });

  it("EpiCache's policy needs the episode's representative text", () => {
    expect(() => PRESS_REGISTRY.epicache(frame)).toThrow(/representative text/);
  });
});

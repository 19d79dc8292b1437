import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { readTranscript } from "../db/messages";
import { ADMIN_TOKEN, call, errorCode, newTenant } from "../testing/helpers";

describe("strings the API stores", () => {
  it("refuses lone UTF-16 surrogates (D1 would read them back as U+FFFD), in every stored field", async () => {
    const { apiKey, tenantId } = await newTenant();
    const ok = { id: "m1", speaker: "Ann", text: "Hi" };
    for (const message of [
      { ...ok, id: "a\ud800" },
      { ...ok, speaker: "\udfffAnn" },
      { ...ok, text: "x\ud83d y" },
      { ...ok, timestamp: "\ud800" },
      { ...ok, session: "s\udc00" },
    ]) {
      const res = await call("POST", "/v1/conversations/c/messages", {
        body: { messages: [message] },
        key: apiKey,
      });
      expect(res.status, JSON.stringify(message)).toBe(400);
      expect(await errorCode(res)).toBe("invalid_argument");
    }
    expect(await readTranscript(env.DB, tenantId, "c")).toEqual([]);
    const tenant = await call("POST", "/v1/tenants", {
      body: { name: "Acme\ud800" },
      key: ADMIN_TOKEN,
    });
    expect(await errorCode(tenant)).toBe("invalid_argument");
  });

  it("stores well-formed text exactly as sent: astral characters, NUL, right-to-left marks, quotes", async () => {
    const { apiKey, tenantId } = await newTenant();
    const messages = [
      {
        id: "m-\u{1F600}",
        speaker: "A\u0000B",
        text: "x\u{1F600}y \u202e 'q' \"d\" \\ %",
        timestamp: "\u00e9t\u00e9",
        session: "\u{10FFFF}",
      },
      { id: "m2", speaker: "S", text: "", session: 3 },
    ];
    expect(
      (await call("POST", "/v1/conversations/c/messages", { body: { messages }, key: apiKey }))
        .status,
    ).toBe(200);
    expect(await readTranscript(env.DB, tenantId, "c")).toEqual(messages);
  });
});

import { describe, expect, it } from "vitest";
import { constantTimeEqual, signRequest, verifyRequest } from "./signature";

const parts = {
  method: "POST",
  path: "/v1/embed",
  timestamp: 1_800_000_000,
  requestId: "req-00000001",
  body: '{"texts":["hi"]}',
};

async function outcome(
  secret: string,
  headers: Record<string, string>,
  overrides: Partial<typeof parts> = {},
  now = parts.timestamp,
  seen?: (id: string) => boolean,
): Promise<string> {
  try {
    const request = {
      method: overrides.method ?? parts.method,
      path: overrides.path ?? parts.path,
      body: overrides.body ?? parts.body,
    };
    await verifyRequest(secret, request, (n) => headers[n], { now, seen });
    return "ok";
  } catch (e) {
    return `${(e as { code: string }).code}: ${(e as Error).message}`;
  }
}

describe("request signatures", () => {
  it("accept what was signed with the secret, and nothing changed", async () => {
    const headers = await signRequest("s3cret", parts);
    expect(headers["x-epicache-signature"]).toMatch(/^v1=[0-9a-f]{64}$/);
    expect(await outcome("s3cret", headers)).toBe("ok");
    expect(await outcome("other", headers)).toMatch(/^unauthorized: the signature does not match/);
    expect(await outcome("s3cret", headers, { body: '{"texts":["ho"]}' })).toMatch(
      /does not match/,
    );
    expect(await outcome("s3cret", headers, { path: "/v1/embed?x=1" })).toMatch(/does not match/);
    expect(await outcome("s3cret", headers, { method: "PUT" })).toMatch(/does not match/);
    expect(
      await outcome("s3cret", { ...headers, "x-epicache-request-id": "req-00000002" }),
    ).toMatch(/does not match/);
  });

  it("refuse unsigned, stale and replayed requests", async () => {
    const headers = await signRequest("s3cret", parts);
    expect(await outcome("s3cret", {})).toMatch(/^unauthorized: unsigned request/);
    expect(await outcome("s3cret", headers, {}, parts.timestamp + 301)).toMatch(
      /^unauthorized: stale request/,
    );
    expect(await outcome("s3cret", headers, {}, parts.timestamp - 301)).toMatch(/stale/);
    expect(await outcome("s3cret", headers, {}, parts.timestamp + 299)).toBe("ok");
    const ids = new Set<string>();
    const seen = (id: string) => ids.has(id) || (ids.add(id), false);
    expect(await outcome("s3cret", headers, {}, parts.timestamp, seen)).toBe("ok");
    expect(await outcome("s3cret", headers, {}, parts.timestamp, seen)).toMatch(
      /^unauthorized: replayed request/,
    );
  });

  it("compare in constant time, and correctly", () => {
    expect(constantTimeEqual("abc", "abc")).toBe(true);
    expect(constantTimeEqual("abc", "abd")).toBe(false);
    expect(constantTimeEqual("abc", "ab")).toBe(false);
    expect(constantTimeEqual("", "")).toBe(true);
    expect(constantTimeEqual("", "a")).toBe(false);
  });
});

import { describe, expect, it } from "vitest";
import { newWebhookSecret, signWebhook, verifyWebhook } from "./standard-webhooks";

// The example of the Standard Webhooks specification (and the svix libraries' tests).
const SPEC = {
  secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
  id: "msg_p5jXN8AQM9LWM0D4loKWxJek",
  timestamp: 1614265330,
  body: '{"test": 2432232314}',
  signature: "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
};

async function outcome(
  headers: Record<string, string>,
  body = SPEC.body,
  now = SPEC.timestamp,
  secret = SPEC.secret,
): Promise<string> {
  try {
    const { id } = await verifyWebhook(secret, (n) => headers[n], body, { now });
    return `ok ${id}`;
  } catch (e) {
    return `${(e as { code: string }).code}: ${(e as Error).message}`;
  }
}

describe("Standard Webhooks", () => {
  it("sign the specification's example to its signature", async () => {
    const headers = await signWebhook(SPEC.secret, SPEC);
    expect(headers).toEqual({
      "webhook-id": SPEC.id,
      "webhook-timestamp": String(SPEC.timestamp),
      "webhook-signature": SPEC.signature,
    });
    expect(await outcome(headers)).toBe(`ok ${SPEC.id}`);
  });

  it("accept any matching v1 entry of several, and ignore other versions", async () => {
    const headers = await signWebhook(SPEC.secret, SPEC);
    const several = { ...headers, "webhook-signature": `v1a,abc v1,Zm9yZ2Vk ${SPEC.signature}` };
    expect(await outcome(several)).toBe(`ok ${SPEC.id}`);
    expect(
      await outcome({ ...headers, "webhook-signature": `v2,${SPEC.signature.slice(3)}` }),
    ).toMatch(/^webhook_invalid: no v1 signature matches/);
  });

  it("refuse forged, altered, unsigned and stale webhooks", async () => {
    const headers = await signWebhook(SPEC.secret, SPEC);
    expect(await outcome(headers, '{"test": 2432232315}')).toMatch(
      /^webhook_invalid: no v1 signature matches/,
    );
    expect(await outcome({ ...headers, "webhook-id": "msg_other" })).toMatch(
      /no v1 signature matches/,
    );
    expect(await outcome(headers, SPEC.body, SPEC.timestamp, newWebhookSecret())).toMatch(
      /no v1 signature matches/,
    );
    expect(await outcome({ ...headers, "webhook-signature": "v1,Zm9yZ2Vk" })).toMatch(
      /no v1 signature matches/,
    );
    expect(await outcome({})).toMatch(/^webhook_invalid: unsigned webhook/);
    expect(await outcome({ ...headers, "webhook-timestamp": "soon" })).toMatch(/not Unix seconds/);
    expect(await outcome(headers, SPEC.body, SPEC.timestamp + 301)).toMatch(
      /^webhook_invalid: stale webhook: its timestamp is 301 s/,
    );
    expect(await outcome(headers, SPEC.body, SPEC.timestamp - 301)).toMatch(/stale webhook/);
    expect(await outcome(headers, SPEC.body, SPEC.timestamp + 300)).toBe(`ok ${SPEC.id}`);
  });

  it("make secrets of 32 random bytes", () => {
    const a = newWebhookSecret();
    expect(a).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(newWebhookSecret()).not.toBe(a);
  });
});

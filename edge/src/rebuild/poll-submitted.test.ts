import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { installFakeRunners, json, jobStatus } from "../testing/fake-runner";
import { call, testEnv } from "../testing/helpers";
import { V1, V2, seedTenant } from "../testing/seed";
import { pollSubmitted } from "./poll-submitted";

afterEach(() => vi.restoreAllMocks());

describe("the scheduled poll of submitted rebuilds", () => {
  it("activates a quiet rebuild whose callback never came, and leaves recent ones alone", async () => {
    const t = await seedTenant("cron");
    const asked: string[] = [];
    installFakeRunners(({ path }) => {
      asked.push(path);
      return path === `/v1/jobs/${t.jobV2}` ? json(jobStatus({ id: t.jobV2, tenant: t.tenantId, conversation: "conv-1", version: V2 })) : json({ error: { code: "not_found", message: path } }, 404);
    });
    // Just submitted: not quiet yet.
    expect(await pollSubmitted(testEnv())).toEqual({ polled: 0, settled: 0 });
    expect(asked).toEqual([]);
    // A minute later the runner is asked, and the version becomes active.
    const later = new Date(Date.now() + 61_000);
    const { settled } = await pollSubmitted(testEnv(), later);
    expect(settled).toBeGreaterThanOrEqual(1);
    expect(asked).toContain(`/v1/jobs/${t.jobV2}`);
    const res = await call("GET", "/v1/conversations/conv-1", { key: t.apiKey });
    expect(await res.json()).toMatchObject({ activeVersion: V2, rebuild: { version: V2, status: "succeeded" } });
    const row = await env.DB.prepare("SELECT status FROM versions WHERE tenant_id = ? AND version = ?").bind(t.tenantId, V1).first<{ status: string }>();
    expect(row?.status).toBe("succeeded");
  });
});

import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { jobStatus } from "../testing/fake-runner";
import { call, newTenant } from "../testing/helpers";
import { recordingQueue, runnerCallback } from "../testing/rebuild-flow";

afterEach(() => vi.restoreAllMocks());

describe("settling a rebuild", () => {
  it("names its follow-up newer than it, even when its id is ahead of this clock", async () => {
    const t = await newTenant("settle");
    await call("POST", "/v1/conversations/c/messages", {
      body: { messages: [{ id: "m1", speaker: "Ann", text: "Hi" }] },
      key: t.apiKey,
    });
    const ahead = "v20990101T000000000Z-ffffff";
    const now = new Date().toISOString();
    await env.DB.batch([
      env.DB.prepare(
        "INSERT INTO versions (tenant_id, conversation_id, version, status, runner_url, job_id, created_at, updated_at) VALUES (?, 'c', ?, 'submitted', 'http://runner-a.test', 'job-ahead', ?, ?)",
      ).bind(t.tenantId, ahead, now, now),
      env.DB.prepare(
        "UPDATE conversations SET follow_up = 1 WHERE tenant_id = ? AND id = 'c'",
      ).bind(t.tenantId),
    ]);
    const { jobs, environment } = recordingQueue();
    await runnerCallback(
      jobStatus({
        id: "job-ahead",
        tenant: t.tenantId,
        conversation: "c",
        version: ahead,
        status: "failed",
      }),
      environment,
    );
    expect(jobs).toHaveLength(1);
    expect(jobs[0].version > ahead).toBe(true);
    expect(jobs[0].version.startsWith("v20990101T000000001Z-")).toBe(true);
  });
});

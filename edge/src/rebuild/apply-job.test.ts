import { afterEach, describe, expect, it, vi } from "vitest";
import { installFakeRunners, json, jobStatus } from "../testing/fake-runner";
import { call } from "../testing/helpers";
import { V1, V2, seedTenant } from "../testing/seed";

afterEach(() => vi.restoreAllMocks());

describe("polling a submitted rebuild", () => {
  it("fails a version whose runner reports success with a malformed result, so reading the conversation keeps working", async () => {
    const t = await seedTenant("polled");
    // Ragged centroids: two dimensions declared, one centroid of three.
    installFakeRunners(({ path }) =>
      path === `/v1/jobs/${t.jobV2}`
        ? json(
            jobStatus({
              id: t.jobV2,
              tenant: t.tenantId,
              conversation: "conv-1",
              version: V2,
              centroids: [
                [1, 0],
                [0, 1, 0],
              ],
            }),
          )
        : json({ error: { code: "not_found", message: path } }, 404),
    );
    for (let i = 0; i < 2; i++) {
      const res = await call("GET", "/v1/conversations/conv-1", { key: t.apiKey });
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({
        activeVersion: V1,
        rebuild: { version: V2, status: "failed", error: { code: "runner_invalid" } },
      });
    }
  });
});

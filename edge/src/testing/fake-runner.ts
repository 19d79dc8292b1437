/**
 * Fake runners for the edge's tests: `fetch` is replaced (the Worker runs in the test's isolate) by
 * a function that answers requests to the test runner URLs, checking each one's signature like the
 * real runner does, and records them. The real runner is exercised by the end-to-end test.
 */
import { vi } from "vitest";
import { verifyRequest, type JobRouting } from "@epicache/shared";
import { RUNNER_SECRET } from "./helpers";

/** A request a fake runner received (its signature already checked). */
export interface RunnerRequest {
  runner: string;
  method: string;
  path: string;
  body: unknown;
}

/** How a fake runner answers: a Response, or a thrown error for a runner that cannot be reached. */
export type RunnerHandler = (request: RunnerRequest) => Response | Promise<Response>;

/** JSON response helper. */
export function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json" },
  });
}

/**
 * Routes `fetch` to `handler` for every `http://*.test` origin except the edge's own; records every
 * request. Returns the log; `vi.restoreAllMocks()` undoes it.
 */
export function installFakeRunners(handler: RunnerHandler): RunnerRequest[] {
  const log: RunnerRequest[] = [];
  const realFetch = globalThis.fetch;
  vi.spyOn(globalThis, "fetch").mockImplementation(
    async (input: RequestInfo | URL, init?: RequestInit) => {
      const request = new Request(input, init);
      const url = new URL(request.url);
      if (!url.hostname.endsWith(".test") || url.hostname === "edge.test")
        return realFetch(input, init);
      const text = await request.text();
      await verifyRequest(
        RUNNER_SECRET,
        { method: request.method, path: url.pathname + url.search, body: text },
        (name) => request.headers.get(name),
        { now: Date.now() / 1000 },
      );
      const entry: RunnerRequest = {
        runner: url.origin,
        method: request.method,
        path: url.pathname + url.search,
        body: text === "" ? undefined : JSON.parse(text),
      };
      log.push(entry);
      return handler(entry);
    },
  );
  return log;
}

/**
 * A finished job as the runner reports it; without `routing`, as a runner before routing rules did;
 * without `lastMessageId`, as a runner before updates did (no kind, reason or base either).
 */
export function jobStatus(overrides: {
  id?: string;
  tenant: string;
  conversation: string;
  version: string;
  status?: "queued" | "running" | "succeeded" | "failed";
  centroids?: number[][];
  modelId?: string;
  error?: { code: string; message: string } | null;
  routing?: JobRouting;
  lastMessageId?: string;
  baseVersion?: string;
}) {
  const status = overrides.status ?? "succeeded";
  const centroids = overrides.centroids ?? [
    [1, 0, 0],
    [0, 1, 0],
    [0, 0, 1],
  ];
  return {
    id: overrides.id ?? "job-1",
    tenant: overrides.tenant,
    conversation: overrides.conversation,
    version: overrides.version,
    status,
    stage: status === "succeeded" ? "done" : status === "queued" ? "queued" : "prefill",
    percent: status === "succeeded" ? 100 : 40,
    etaSeconds: status === "succeeded" ? 0 : 12,
    createdAt: new Date().toISOString(),
    finishedAt: status === "succeeded" || status === "failed" ? new Date().toISOString() : null,
    error:
      overrides.error ??
      (status === "failed" ? { code: "conversation_invalid", message: "bad transcript" } : null),
    result:
      status === "succeeded"
        ? {
            version: overrides.version,
            active: overrides.version,
            manifestKey: `tenants/${overrides.tenant}/conversations/${overrides.conversation}/versions/${overrides.version}/manifest.json`,
            contextTokens: 1234,
            episodes: centroids.map((centroid, id) => ({
              id,
              centroid,
              bytes: 1000,
              entries: 96,
              layerEntries: [64, 32],
              representative: `Ann: what episode ${id} is about`,
            })),
            embedder: {
              modelId: overrides.modelId ?? "sentence-transformers/all-MiniLM-L6-v2",
              dimension: centroids[0].length,
            },
            ...(overrides.routing === undefined ? {} : { routing: overrides.routing }),
            ...(overrides.lastMessageId === undefined
              ? {}
              : overrides.baseVersion === undefined
                ? {
                    kind: "full" as const,
                    reason: "full build",
                    baseVersion: null,
                    lastMessageId: overrides.lastMessageId,
                  }
                : {
                    kind: "incremental" as const,
                    reason: "new messages",
                    baseVersion: overrides.baseVersion,
                    lastMessageId: overrides.lastMessageId,
                  }),
          }
        : null,
  };
}

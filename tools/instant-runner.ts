/**
 * A runner that answers at once, for measuring the edge alone (`npm run bench:load`): a real HTTP
 * server on loopback that checks the edge's signatures like the real runner and speaks its API
 * (shared/runner-api), with no model behind it. Embeddings are a fixed unit vector; a rebuild
 * succeeds at once (its completion posted to the callback, signed) with episodes whose centroids
 * are unit vectors; an answer is a fixed sentence, as JSON or server-sent events.
 */
import { randomUUID } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { RebuildRequest, signRequest, verifyRequest, type JobStatus } from "@epicache/shared";

export interface InstantRunner {
  url: string;
  /** Requests answered, by path. */
  counts: Map<string, number>;
  close(): Promise<void>;
}

const MODEL = "sentence-transformers/all-MiniLM-L6-v2";
const DIMENSION = 384;
const ANSWER = "A short answer from the instant runner.";

function unit(i: number): number[] {
  const v = new Array<number>(DIMENSION).fill(0);
  v[i % DIMENSION] = 1;
  return v;
}

export async function startInstantRunner(secret: string, episodes = 4): Promise<InstantRunner> {
  const counts = new Map<string, number>();
  const jobs = new Map<string, JobStatus>();
  const seen = new Set<string>();
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      void (async () => {
        const body = Buffer.concat(chunks);
        const path = req.url ?? "/";
        counts.set(path.split("?")[0], (counts.get(path.split("?")[0]) ?? 0) + 1);
        const send = (status: number, value: unknown) => {
          res.writeHead(status, { "content-type": "application/json" });
          res.end(JSON.stringify(value));
        };
        try {
          await verifyRequest(
            secret,
            { method: req.method ?? "GET", path, body },
            (n) => req.headers[n] as string | undefined,
            {
              now: Date.now() / 1000,
              seen: (id) => seen.has(id) || (seen.add(id), false),
            },
          );
        } catch (e) {
          return send(401, { error: { code: "unauthorized", message: (e as Error).message } });
        }
        const json =
          body.length > 0 ? (JSON.parse(body.toString()) as Record<string, unknown>) : {};
        if (path === "/v1/embed")
          return send(200, {
            model: MODEL,
            dimension: DIMENSION,
            vectors: (json.texts as string[]).map((_, i) => unit(i)),
          });
        if (path === "/v1/generate") {
          const reply = {
            answer: ANSWER,
            tenant: json.tenant,
            conversation: json.conversation,
            version: json.version,
            episode: json.episode,
            tokens: 8,
            timings: { queuedMs: 0, loadMs: 0, generateMs: 0 },
          };
          if (json.stream !== true) return send(200, reply);
          res.writeHead(200, { "content-type": "text/event-stream" });
          for (const word of ANSWER.split(" "))
            res.write(`event: token\ndata: ${JSON.stringify({ text: ` ${word}` })}\n\n`);
          return res.end(`event: done\ndata: ${JSON.stringify(reply)}\n\n`);
        }
        if (path === "/v1/rebuild") {
          const r = RebuildRequest.parse(json);
          const now = new Date().toISOString();
          const status: JobStatus = {
            id: randomUUID(),
            tenant: r.tenant,
            conversation: r.conversation,
            version: r.version,
            status: "succeeded",
            stage: "done",
            percent: 100,
            etaSeconds: 0,
            createdAt: now,
            finishedAt: now,
            error: null,
            result: {
              version: r.version,
              active: r.version,
              manifestKey: `tenants/${r.tenant}/conversations/${r.conversation}/versions/${r.version}/manifest.json`,
              contextTokens: 1000,
              episodes: Array.from({ length: episodes }, (_, e) => ({
                id: e,
                centroid: unit(e),
                bytes: 1,
              })),
              embedder: { modelId: MODEL, dimension: DIMENSION },
            },
          };
          jobs.set(status.id, status);
          send(202, {
            ...status,
            status: "queued",
            stage: "queued",
            percent: 0,
            finishedAt: null,
            result: null,
          });
          if (r.callbackUrl !== undefined) {
            const text = JSON.stringify(status);
            const u = new URL(r.callbackUrl);
            const headers = await signRequest(secret, {
              method: "POST",
              path: u.pathname + u.search,
              timestamp: Math.floor(Date.now() / 1000),
              requestId: randomUUID(),
              body: text,
            });
            await fetch(r.callbackUrl, {
              method: "POST",
              headers: { ...headers, "content-type": "application/json" },
              body: text,
            }).catch(() => undefined);
          }
          return;
        }
        const job = /^\/v1\/jobs\/([^/?]+)/.exec(path);
        if (job !== null && jobs.has(job[1])) return send(200, jobs.get(job[1]));
        return send(404, { error: { code: "not_found", message: `no route ${path}` } });
      })().catch((e: Error) => {
        if (!res.headersSent) res.writeHead(500, { "content-type": "application/json" });
        res.end(JSON.stringify({ error: { code: "internal", message: e.message } }));
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    counts,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

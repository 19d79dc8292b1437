/**
 * A fault-injecting HTTP proxy on loopback, in front of the S3 test server: a real `node:http` server
 * that forwards every request to the upstream unchanged, except those a rule matches, which it fails:
 *
 * - `status`: answers 500 or 503 with S3's XML error body (the upstream never sees the request);
 * - `reset`: resets the TCP connection, before forwarding (the write never happens) or after the
 *   upstream answered (the write happened; the client cannot know);
 * - `delay`: holds the request (before) or the response (after) for `ms`, past the client's timeout;
 * - `truncate`: forwards, sends the headers as they came (so Content-Length promises the whole body),
 *   then `bytes` bytes of the body, then resets the connection;
 * - `corrupt`: forwards and flips one byte of the body at `at` (the length stays right).
 *
 * A rule matches on method and on the object key (the path after the bucket), and fires `times` times
 * (default once; `Infinity` until cleared). Every request is logged with the fault it got, so a test
 * can check that its fault fired.
 *
 *   const proxy = await startFaultProxy(s3.endpoint);
 *   proxy.fail({ method: "PUT", key: /manifest\.json$/, fault: { kind: "status", status: 503 } });
 */
import {
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import type { AddressInfo, Socket } from "node:net";

export type Fault =
  | { kind: "status"; status: 500 | 503 }
  | { kind: "reset"; when: "before" | "after" }
  | { kind: "delay"; ms: number; when: "before" | "after" }
  | { kind: "truncate"; bytes: number }
  | { kind: "corrupt"; at: number };

export interface FaultRule {
  /** HTTP method (GET, PUT, HEAD, POST, DELETE); any when absent. */
  method?: string;
  /** The object key (path without the bucket, no query); any when absent. */
  key?: RegExp;
  fault: Fault;
  /** How many matching requests fail. Default 1. */
  times?: number;
}

export interface ProxiedRequest {
  method: string;
  /** Path and query as the client sent them. */
  url: string;
  key: string;
  fault: Fault["kind"] | null;
}

export interface FaultProxy {
  endpoint: string;
  /** Adds a rule; rules are tried in the order added. */
  fail(rule: FaultRule): void;
  /** Drops every rule: from now on everything is forwarded. */
  clear(): void;
  /** Every request so far, oldest first. */
  readonly log: readonly ProxiedRequest[];
  /** The requests that got a fault. */
  faulted(): ProxiedRequest[];
  stop(): Promise<void>;
}

const ERROR_CODE = { 500: "InternalError", 503: "SlowDown" } as const;

function s3ErrorXml(status: 500 | 503, key: string): string {
  const code = ERROR_CODE[status];
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>injected ${status} by the fault proxy</Message><Resource>/${key}</Resource><RequestId>fault-proxy</RequestId></Error>`;
}

/** The object key of a path-style URL: `/bucket/a/b?x` → `a/b`. */
function keyOf(url: string): string {
  const path = decodeURIComponent(url.split("?")[0]);
  const slash = path.indexOf("/", 1);
  return slash < 0 ? "" : path.slice(slash + 1);
}

function reset(socket: Socket): void {
  // An RST, not a FIN: the client sees ECONNRESET.
  if (!socket.destroyed) socket.resetAndDestroy();
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function startFaultProxy(upstream: string): Promise<FaultProxy> {
  const target = new URL(upstream);
  const rules: Array<FaultRule & { left: number }> = [];
  const log: ProxiedRequest[] = [];
  const sockets = new Set<Socket>();

  function take(method: string, key: string): Fault | null {
    for (const r of rules) {
      if (r.left <= 0) continue;
      if (r.method !== undefined && r.method !== method) continue;
      if (r.key !== undefined && !r.key.test(key)) continue;
      r.left--;
      return r.fault;
    }
    return null;
  }

  /** Forwards the request (its body already read) and resolves with the upstream's whole answer. */
  function forward(
    req: IncomingMessage,
    body: Buffer,
  ): Promise<{ status: number; headers: IncomingMessage["headers"]; body: Buffer }> {
    return new Promise((resolve, reject) => {
      const out = httpRequest(
        {
          host: target.hostname,
          port: target.port,
          method: req.method,
          path: req.url,
          headers: req.headers,
          agent: false,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () =>
            resolve({
              status: res.statusCode ?? 502,
              headers: res.headers,
              body: Buffer.concat(chunks),
            }),
          );
          res.on("error", reject);
        },
      );
      out.on("error", reject);
      out.end(body);
    });
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? "GET";
    const url = req.url ?? "/";
    const key = keyOf(url);
    const fault = take(method, key);
    log.push({ method, url, key, fault: fault?.kind ?? null });
    // The whole request body first: S3 requests here are small, and a fault then lands at a known point.
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const socket = req.socket;

    if (fault?.kind === "status") {
      const xml = s3ErrorXml(fault.status, key);
      res.writeHead(fault.status, {
        "content-type": "application/xml",
        "content-length": method === "HEAD" ? 0 : Buffer.byteLength(xml),
      });
      res.end(method === "HEAD" ? undefined : xml);
      return;
    }
    if (fault?.kind === "reset" && fault.when === "before") return reset(socket);
    if (fault?.kind === "delay" && fault.when === "before") {
      await sleep(fault.ms);
      if (socket.destroyed) return; // the client gave up: the request never reaches the store
    }

    const answer = await forward(req, body);
    if (fault?.kind === "reset") return reset(socket);
    if (fault?.kind === "delay") {
      await sleep(fault.ms);
      if (socket.destroyed) return;
    }
    let sent = answer.body;
    if (fault?.kind === "corrupt" && sent.length > 0) {
      sent = Buffer.from(sent);
      const at = Math.min(fault.at, sent.length - 1);
      sent[at] ^= 0xff;
    }
    const headers = { ...answer.headers };
    delete headers["transfer-encoding"];
    if (method !== "HEAD") headers["content-length"] = String(answer.body.length);
    res.writeHead(answer.status, headers);
    if (fault?.kind === "truncate") {
      res.write(sent.subarray(0, Math.min(fault.bytes, sent.length)));
      // Let the partial body reach the client before the reset.
      await sleep(20);
      return reset(socket);
    }
    res.end(method === "HEAD" ? undefined : sent);
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((e: Error) => {
      if (!res.headersSent) {
        res.writeHead(502, { "content-type": "text/plain" });
        res.end(`fault proxy: ${e.message}`);
      } else {
        reset(req.socket);
      }
    });
  });
  server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    fail: (rule) => rules.push({ ...rule, left: rule.times ?? 1 }),
    clear: () => {
      rules.length = 0;
    },
    log,
    faulted: () => log.filter((r) => r.fault !== null),
    stop: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

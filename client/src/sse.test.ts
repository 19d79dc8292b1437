import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ServerSentEventParser, serverSentEvents, type ServerSentEvent } from "./sse";

const encoder = new TextEncoder();

/** A body that sends `bytes` cut at `cuts` (offsets, in any order). */
function streamOf(bytes: Uint8Array, cuts: number[] = []): ReadableStream<Uint8Array> {
  const points = [
    ...new Set([0, ...cuts.filter((c) => c > 0 && c < bytes.length), bytes.length]),
  ].sort((a, b) => a - b);
  const chunks = points.slice(1).map((end, i) => bytes.slice(points[i], end));
  return new ReadableStream({
    pull(controller) {
      const chunk = chunks.shift();
      if (chunk === undefined) controller.close();
      else controller.enqueue(chunk);
    },
  });
}

async function collect(body: ReadableStream<Uint8Array>): Promise<ServerSentEvent[]> {
  const events: ServerSentEvent[] = [];
  for await (const e of serverSentEvents(body)) events.push(e);
  return events;
}

const ev = (event: string, data: string, id = ""): ServerSentEvent => ({ event, data, id });

// An answer as the edge streams it, with text that is more than one byte a character in UTF-8.
const ANSWER = [
  'event: meta\ndata: {"episode":2,"version":"v20260101T000000000Z-000001"}\n\n',
  'event: token\ndata: {"text":"Caf\u00e9 "}\n\n',
  'event: token\ndata: {"text":"\u6771\u4eac \ud83d\ude80"}\n\n',
  'event: done\ndata: {"answer":"Caf\u00e9 \u6771\u4eac \ud83d\ude80","episode":2,"version":"v20260101T000000000Z-000001","tokens":3,"timings":{"queuedMs":0,"loadMs":1,"generateMs":2}}\n\n',
].join("");
const ANSWER_EVENTS = [
  ev("meta", '{"episode":2,"version":"v20260101T000000000Z-000001"}'),
  ev("token", '{"text":"Caf\u00e9 "}'),
  ev("token", '{"text":"\u6771\u4eac \ud83d\ude80"}'),
  ev(
    "done",
    '{"answer":"Caf\u00e9 \u6771\u4eac \ud83d\ude80","episode":2,"version":"v20260101T000000000Z-000001","tokens":3,"timings":{"queuedMs":0,"loadMs":1,"generateMs":2}}',
  ),
];

describe("server-sent events", () => {
  it("parses a whole stream", async () => {
    expect(await collect(streamOf(encoder.encode(ANSWER)))).toEqual(ANSWER_EVENTS);
  });

  it("gives the same events whatever byte it is cut at, inside a line or a UTF-8 character", async () => {
    const bytes = encoder.encode(ANSWER);
    for (let cut = 1; cut < bytes.length; cut++) {
      expect(await collect(streamOf(bytes, [cut])), `cut at byte ${cut}`).toEqual(ANSWER_EVENTS);
    }
  });

  it("gives the same events for any cutting, with any of the three line endings", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom("\n", "\r\n", "\r"),
        fc.array(fc.nat({ max: 600 }), { maxLength: 40 }),
        async (eol, cuts) => {
          const bytes = encoder.encode(ANSWER.replace(/\n/g, eol));
          expect(await collect(streamOf(bytes, cuts))).toEqual(ANSWER_EVENTS);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("joins data lines, skips comments and events without data, and keeps the last id", () => {
    const parser = new ServerSentEventParser();
    const text =
      ": keep-alive\n\nevent: token\ndata:a\ndata: b\ndata\n\nevent: empty\n\nid: 7\nretry: 100\ndata: c\n\ndata: {}\n\n";
    expect(parser.push(text)).toEqual([
      ev("token", "a\nb\n"),
      ev("message", "c", "7"),
      ev("message", "{}", "7"),
    ]);
    expect(parser.end()).toEqual([]);
  });

  it("drops an event the stream ends in the middle of, and counts a last lone \\r as a line end", () => {
    const cut = new ServerSentEventParser();
    expect(cut.push("event: done\ndata: {}\n")).toEqual([]);
    expect(cut.end()).toEqual([]);
    const cr = new ServerSentEventParser();
    // The last `\r` may be half of a `\r\n` until the stream ends.
    expect(cr.push("data: x\r\r")).toEqual([]);
    expect(cr.end()).toEqual([ev("message", "x")]);
  });

  it("ignores a byte order mark at the start", async () => {
    const bytes = new Uint8Array([0xef, 0xbb, 0xbf, ...encoder.encode("data: x\n\n")]);
    expect(await collect(streamOf(bytes, [1, 2]))).toEqual([ev("message", "x")]);
  });

  it("cancels the body when the reader stops early", async () => {
    let cancelled = false;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        controller.enqueue(encoder.encode("data: again\n\n"));
      },
      cancel() {
        cancelled = true;
      },
    });
    for await (const e of serverSentEvents(body)) {
      expect(e.data).toBe("again");
      break;
    }
    expect(cancelled).toBe(true);
  });
});

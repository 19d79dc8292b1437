/**
 * A runner's streamed answer as the tenant gets it: a first `meta` event (episode, version, routing), then
 * the runner's `token` events as they are and its `done` with the routing added, and its `error` event rewritten to the API's
 * error body (`{error: {code, message, requestId}}`, the code's fixed text). Anything else the
 * runner sends is dropped; a stream that breaks, or ends without `done` or `error`, ends with an
 * `error` event of the edge's own. What the runner said is logged under the request id.
 */
import { PUBLIC_MESSAGES, describeError, errorBody, type ErrorCode } from "@epicache/shared";
import { logError, logWarn } from "../log";
import { parseJson, tenantCode } from "../runner/runner-client";

const encoder = new TextEncoder();

function event(name: string, data: unknown): Uint8Array {
  return encoder.encode(`event: ${name}\ndata: ${JSON.stringify(data)}\n\n`);
}

/** The event name and data of one block of lines (`event: …`, `data: …`). */
function parseBlock(block: string): { name: string; data: string } {
  let name = "message";
  const data: string[] = [];
  for (const line of block.split(/\r?\n/)) {
    if (line.startsWith("event:")) name = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
  }
  return { name, data: data.join("\n") };
}

/**
 * The tenant's stream of `body` (the runner's server-sent events).
 *
 * @example
 * ```ts
 * return c.body(answerEvents(response.body, { episode, version }, { requestId, runner }), 200, { "content-type": "text/event-stream" });
 * ```
 */
export function answerEvents(
  body: ReadableStream<Uint8Array>,
  meta: { episode: number; version: string; routing?: unknown },
  context: { requestId: string; runner: string },
): ReadableStream<Uint8Array> {
  const { requestId, runner } = context;
  const upstream = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let finished = false;

  return new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(event("meta", meta));
    },
    // Reads until it has sent something, or the stream is over: a pull that sends nothing is not
    // called again.
    async pull(controller) {
      let sent = false;
      const send = (bytes: Uint8Array) => {
        controller.enqueue(bytes);
        sent = true;
      };
      const fail = (code: ErrorCode, detail: Record<string, unknown>) => {
        logError("answer_stream_failed", { requestId, runner, code, ...detail });
        send(event("error", errorBody(code, PUBLIC_MESSAGES[code], requestId)));
        finished = true;
      };
      const handle = (block: string) => {
        if (finished || block.trim() === "") return;
        const { name, data } = parseBlock(block);
        if (name === "token") {
          send(encoder.encode(`${block}\n\n`));
        } else if (name === "done") {
          // The whole answer, as a JSON answer has it: the runner's, with the edge's routing.
          const done = parseJson(data);
          send(
            done !== null && typeof done === "object" && meta.routing !== undefined
              ? event("done", { ...done, routing: meta.routing })
              : encoder.encode(`${block}\n\n`),
          );
          finished = true;
        } else if (name === "error") {
          const reported = parseJson(data) as { error?: { code?: unknown } } | null;
          fail(tenantCode(reported?.error?.code), { event: data.slice(0, 2000) });
        } else {
          logWarn("answer_stream_dropped", { requestId, runner, block: block.slice(0, 500) });
        }
      };
      while (!sent && !finished) {
        let chunk: ReadableStreamReadResult<Uint8Array>;
        try {
          chunk = await upstream.read();
        } catch (e) {
          fail("runner_unavailable", { why: "the runner's stream broke", error: describeError(e) });
          break;
        }
        if (chunk.done) {
          handle(buffer + decoder.decode());
          buffer = "";
          if (!finished)
            fail("runner_invalid", {
              why: "the runner's stream ended without a done or error event",
            });
          break;
        }
        buffer += decoder.decode(chunk.value, { stream: true });
        const blocks = buffer.split(/\r?\n\r?\n/);
        buffer = blocks.pop() ?? "";
        for (const block of blocks) handle(block);
      }
      if (finished) {
        controller.close();
        await upstream.cancel().catch(() => undefined);
      }
    },
    cancel(reason) {
      return upstream.cancel(reason);
    },
  });
}

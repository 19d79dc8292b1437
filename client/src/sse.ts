/**
 * Server-sent events (the HTML standard's `text/event-stream`), parsed from a byte stream that may
 * be cut anywhere: inside a line, between `\r` and `\n`, inside a UTF-8 character. Lines end with
 * `\r\n`, `\n` or `\r`; a blank line dispatches the event; `data:` lines join with `\n`; a line
 * starting with `:` is a comment; an event without data is not dispatched; an event the stream ends
 * in the middle of is dropped.
 */

/** One event: its name (`message` when the stream gave none), its data, and the last event id. */
export interface ServerSentEvent {
  event: string;
  data: string;
  id: string;
}

/**
 * The incremental parser: text in (decoded, in any pieces), whole events out.
 *
 * @example
 * ```ts
 * const parser = new ServerSentEventParser();
 * parser.push("event: token\ndata: {\"te");   // []
 * parser.push("xt\":\"Hi\"}\n\n");             // [{event: "token", data: '{"text":"Hi"}', id: ""}]
 * parser.end();                                // [] (nothing was left half-sent)
 * ```
 */
export class ServerSentEventParser {
  #buffer = "";
  #started = false;
  #event = "";
  #data: string[] = [];
  #id = "";

  /** Takes the next piece of the stream's text; returns the events it completes. */
  push(text: string): ServerSentEvent[] {
    if (!this.#started && text !== "") {
      this.#started = true;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    this.#buffer += text;
    const events: ServerSentEvent[] = [];
    const buffer = this.#buffer;
    let start = 0;
    for (;;) {
      let end = start;
      while (end < buffer.length && buffer[end] !== "\n" && buffer[end] !== "\r") end++;
      if (end === buffer.length) break;
      // A `\r` last in the text may be the first half of `\r\n`: wait for the next piece.
      if (buffer[end] === "\r" && end + 1 === buffer.length) break;
      const line = buffer.slice(start, end);
      start = end + (buffer[end] === "\r" && buffer[end + 1] === "\n" ? 2 : 1);
      const event = this.#line(line);
      if (event !== undefined) events.push(event);
    }
    this.#buffer = buffer.slice(start);
    return events;
  }

  /** Ends the stream: a line ended by a last `\r` counts; an event not ended by a blank line is dropped. */
  end(): ServerSentEvent[] {
    const events: ServerSentEvent[] = [];
    if (this.#buffer.endsWith("\r")) {
      const event = this.#line(this.#buffer.slice(0, -1));
      if (event !== undefined) events.push(event);
    }
    this.#buffer = "";
    this.#event = "";
    this.#data = [];
    return events;
  }

  #line(line: string): ServerSentEvent | undefined {
    if (line === "") {
      const event =
        this.#data.length === 0
          ? undefined
          : { event: this.#event || "message", data: this.#data.join("\n"), id: this.#id };
      this.#event = "";
      this.#data = [];
      return event;
    }
    if (line.startsWith(":")) return undefined;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") this.#event = value;
    else if (field === "data") this.#data.push(value);
    else if (field === "id" && !value.includes("\0")) this.#id = value;
    // `retry` and unknown fields are ignored.
    return undefined;
  }
}

/**
 * The events of a response body, as they arrive. Stopping early (a `break` out of `for await`)
 * cancels the body.
 *
 * @example
 * ```ts
 * for await (const { event, data } of serverSentEvents(response.body!)) console.log(event, data);
 * ```
 */
export async function* serverSentEvents(
  body: ReadableStream<Uint8Array>,
): AsyncGenerator<ServerSentEvent, void, undefined> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  const parser = new ServerSentEventParser();
  let finished = false;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) {
        finished = true;
        yield* parser.push(decoder.decode());
        yield* parser.end();
        return;
      }
      yield* parser.push(decoder.decode(value, { stream: true }));
    }
  } finally {
    if (!finished) await reader.cancel().catch(() => undefined);
    reader.releaseLock();
  }
}

import { EpicacheError } from "../errors";

/**
 * `JSON.parse` for conversation files: strips a byte-order mark and turns a syntax error into a
 * `conversation_invalid` error that names the line and column (1-based) of the first offending
 * character. Engines word their messages differently (Node 20's V8 often gives no position at all), so
 * the place is found by {@link jsonSyntaxErrorOffset}, which runs only once `JSON.parse` has failed.
 *
 * @example
 * ```ts
 * parseJsonText('{"a": 1}', "LoCoMo JSON"); // { a: 1 }
 * parseJsonText('{"a": }', "LoCoMo JSON");
 * // throws conversation_invalid: "LoCoMo JSON is not valid JSON at line 1, column 7: Unexpected token '}', …"
 * ```
 */
export function parseJsonText(text: string, source: string): unknown {
  const body = stripBom(text);
  try {
    return JSON.parse(body);
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    const offset = jsonSyntaxErrorOffset(body);
    const where = offset === undefined ? "" : ` at ${lineColumn(body, offset)}`;
    throw new EpicacheError(
      "conversation_invalid",
      `${source} is not valid JSON${where}: ${message}`,
      { cause: e },
    );
  }
}

/** Drops a leading U+FEFF (files saved by some editors start with one; JSON.parse rejects it). */
export function stripBom(text: string): string {
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

/** `line L, column C` (1-based, columns in UTF-16 code units) of `offset` in `text`. */
export function lineColumn(text: string, offset: number): string {
  const before = text.slice(0, offset);
  const line = before.split("\n").length;
  const column = offset - (before.lastIndexOf("\n") + 1) + 1;
  return `line ${line}, column ${column}`;
}

/** Thrown inside the scanner at the first character that breaks the grammar. */
class SyntaxAt {
  constructor(readonly offset: number) {}
}

/**
 * The offset of the first character of `text` that breaks the JSON grammar (RFC 8259), `text.length`
 * when the text ends too early, or undefined when the text is valid JSON. A plain recursive scanner:
 * it builds no values and is only used to locate an error `JSON.parse` has already reported.
 *
 * @example
 * ```ts
 * jsonSyntaxErrorOffset('{"a": }'); // 6
 * jsonSyntaxErrorOffset('[1, 2'); // 5
 * jsonSyntaxErrorOffset('{"a": 1}'); // undefined
 * ```
 */
export function jsonSyntaxErrorOffset(text: string): number | undefined {
  let i = 0;
  const at = (): string => text[i] ?? "";
  const expect = (char: string): void => {
    if (at() !== char) throw new SyntaxAt(i);
    i++;
  };
  const skipSpace = (): void => {
    while (i < text.length && " \t\n\r".includes(text[i])) i++;
  };
  const digits = (): void => {
    if (!/[0-9]/.test(at())) throw new SyntaxAt(i);
    while (/[0-9]/.test(at())) i++;
  };
  const string = (): void => {
    expect('"');
    for (;;) {
      if (i >= text.length) throw new SyntaxAt(i);
      const code = text.charCodeAt(i);
      if (code === 0x22) return void i++;
      if (code < 0x20) throw new SyntaxAt(i);
      if (code === 0x5c) {
        i++;
        if (at() === "u") {
          i++;
          for (let k = 0; k < 4; k++, i++) if (!/[0-9a-fA-F]/.test(at())) throw new SyntaxAt(i);
          continue;
        }
        if (!'"\\/bfnrt'.includes(at()) || at() === "") throw new SyntaxAt(i);
      }
      i++;
    }
  };
  const number = (): void => {
    if (at() === "-") i++;
    if (at() === "0") i++;
    else digits();
    if (at() === ".") {
      i++;
      digits();
    }
    if (at() === "e" || at() === "E") {
      i++;
      if (at() === "+" || at() === "-") i++;
      digits();
    }
  };
  const literal = (word: string): void => {
    for (const char of word) expect(char);
  };
  const value = (): void => {
    skipSpace();
    const char = at();
    if (char === "{") {
      i++;
      skipSpace();
      if (at() === "}") return void i++;
      for (;;) {
        skipSpace();
        string();
        skipSpace();
        expect(":");
        value();
        skipSpace();
        if (at() === "}") return void i++;
        expect(",");
      }
    }
    if (char === "[") {
      i++;
      skipSpace();
      if (at() === "]") return void i++;
      for (;;) {
        value();
        skipSpace();
        if (at() === "]") return void i++;
        expect(",");
      }
    }
    if (char === '"') return string();
    if (char === "-" || /[0-9]/.test(char)) return number();
    if (char === "t") return literal("true");
    if (char === "f") return literal("false");
    if (char === "n") return literal("null");
    throw new SyntaxAt(i);
  };
  try {
    value();
    skipSpace();
    if (i < text.length) throw new SyntaxAt(i);
    return undefined;
  } catch (e) {
    if (e instanceof SyntaxAt) return e.offset;
    // Nesting deeper than the call stack: no place to report.
    if (e instanceof RangeError) return undefined;
    throw e;
  }
}

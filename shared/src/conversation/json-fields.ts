import { EpicacheError } from "../errors";

/** A parsed JSON object, read field by field. */
export type JsonObject = { readonly [key: string]: unknown };

/**
 * Readers for parsed JSON that name the place of a problem: `source` says which input (`LoCoMo sample
 * "conv-26" ([0])`, `line 17 of the JSONL`) and `path` the field inside it (`conversation.session_3[4].text`).
 * Every failure is a `conversation_invalid` error reading `{source}: {path} {problem}` (`{source} {problem}`
 * when the path is empty: the whole input).
 *
 * @example
 * ```ts
 * const turn = expectObject(value, "REALTALK JSON", "session_2[0]");
 * const text = requiredString(turn, "clean_text", "REALTALK JSON", "session_2[0]");
 * // → throws "REALTALK JSON: session_2[0].clean_text must be a string, got a number" when it is 3
 * ```
 */
export function fail(source: string, path: string, problem: string): never {
  throw new EpicacheError(
    "conversation_invalid",
    path ? `${source}: ${path} ${problem}` : `${source} ${problem}`,
  );
}

/** The path of `key` (a field name or an array index) below `path`: `a.b`, `a[3]`, `a["odd key"]`. */
export function childPath(path: string, key: string | number): string {
  if (typeof key === "number") return `${path}[${key}]`;
  const name = /^[A-Za-z_$][\w$]*$/.test(key) ? key : `[${JSON.stringify(key)}]`;
  if (path === "") return name;
  return name.startsWith("[") ? `${path}${name}` : `${path}.${name}`;
}

/** How a JSON value is described in messages: `a string`, `a number`, `null`, `an array`, `an object`. */
export function describeJson(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  switch (typeof value) {
    case "undefined":
      return "nothing";
    case "object":
      return "an object";
    default:
      return `a ${typeof value}`;
  }
}

/** `value` as an object (not null, not an array), else a `conversation_invalid` error at `path`. */
export function expectObject(value: unknown, source: string, path: string): JsonObject {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return missingOr(value, source, path, "an object");
  }
  return value as JsonObject;
}

/** `value` as an array, else a `conversation_invalid` error at `path`. */
export function expectArray(value: unknown, source: string, path: string): readonly unknown[] {
  if (!Array.isArray(value)) return missingOr(value, source, path, "an array");
  return value;
}

/** The string field `key` of `object` (at `path`); missing or another type is an error. */
export function requiredString(
  object: JsonObject,
  key: string,
  source: string,
  path: string,
): string {
  const value = object[key];
  if (typeof value !== "string") return missingOr(value, source, childPath(path, key), "a string");
  return value;
}

/** The string field `key` of `object` (at `path`), undefined when absent or null; another type is an error. */
export function optionalString(
  object: JsonObject,
  key: string,
  source: string,
  path: string,
): string | undefined {
  const value = object[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "string") return missingOr(value, source, childPath(path, key), "a string");
  return value;
}

function missingOr(value: unknown, source: string, path: string, expected: string): never {
  if (value === undefined) return fail(source, path, `is missing (expected ${expected})`);
  return fail(source, path, `must be ${expected}, got ${describeJson(value)}`);
}

import { type EpicacheError, isEpicacheError } from "../errors";

/**
 * The coded error `f` throws, for assertions on its code and message; anything else (no throw, a plain
 * Error) fails the test.
 *
 * @example
 * ```ts
 * expect(thrown(() => loadJsonl("{}")).message).toContain("line 1 of the JSONL: speaker is missing");
 * ```
 */
export function thrown(f: () => unknown): EpicacheError {
  try {
    f();
  } catch (e) {
    if (isEpicacheError(e)) return e;
    throw new Error(`expected an EpicacheError, got ${String(e)}`, { cause: e });
  }
  throw new Error("expected an EpicacheError, but nothing was thrown");
}

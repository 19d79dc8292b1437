/**
 * The edge's log lines during a test (console.error and console.warn, which edge/src/log.ts writes
 * JSON to), kept instead of printed, so that a test can check that what a response leaves out was
 * logged under the response's request id. `vi.restoreAllMocks()` undoes it.
 */
import { vi } from "vitest";

export interface CapturedLogs {
  /** Every line, as written. */
  lines: string[];
  /** The lines that name `requestId`, joined. */
  of(requestId: string): string;
}

export function captureLogs(): CapturedLogs {
  const lines: string[] = [];
  const keep = (...args: unknown[]) =>
    void lines.push(args.map((a) => (typeof a === "string" ? a : String(a))).join(" "));
  vi.spyOn(console, "error").mockImplementation(keep);
  vi.spyOn(console, "warn").mockImplementation(keep);
  return { lines, of: (requestId) => lines.filter((l) => l.includes(requestId)).join("\n") };
}

/** Command-line value parsing shared by the commands. */
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import {
  EpicacheError,
  loadConversation,
  selectSessions,
  type Conversation,
  type ConversationFormat,
} from "@epicache/shared";

/** A numeric option: `fallback` when absent, an `invalid_argument` error when malformed or rejected. */
export function numberOption(
  name: string,
  raw: string | undefined,
  fallback: number,
  check: (n: number) => boolean,
): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (raw.trim() === "" || !Number.isFinite(n) || !check(n))
    throw new EpicacheError("invalid_argument", `--${name} ${JSON.stringify(raw)} is not valid`);
  return n;
}

export const isPositiveInt = (n: number) => Number.isInteger(n) && n > 0;

/**
 * An option with a closed set of values: `fallback` when absent, an `invalid_argument` error naming
 * the allowed values when it is none of them.
 */
export function enumOption<T extends string>(name: string, raw: string, allowed: readonly T[]): T;
export function enumOption<T extends string>(
  name: string,
  raw: string | undefined,
  allowed: readonly T[],
  fallback: T,
): T;
export function enumOption<T extends string>(
  name: string,
  raw: string | undefined,
  allowed: readonly T[],
): T | undefined;
export function enumOption<T extends string>(
  name: string,
  raw: string | undefined,
  allowed: readonly T[],
  fallback?: T,
): T | undefined {
  if (raw === undefined) return fallback;
  if (!(allowed as readonly string[]).includes(raw))
    throw new EpicacheError(
      "invalid_argument",
      `--${name} ${JSON.stringify(raw)} is not one of ${allowed.join(", ")}`,
    );
  return raw as T;
}

/** The allowed values for a usage line, `fallback` (the default) first: `fast|ggml|exact`. */
export function choices(allowed: readonly string[], fallback?: string, separator = "|"): string {
  return (
    fallback === undefined ? allowed : [fallback, ...allowed.filter((v) => v !== fallback)]
  ).join(separator);
}

/** Peak resident set size of this process so far. */
export function peakRssBytes(): number {
  return process.resourceUsage().maxRSS * 1024;
}

/**
 * The conversation a command's `--conversation FILE` names, in `format` (detected when absent), its
 * LoCoMo `sample`, cut to `sessions` (A-B) when given; a file that cannot be read is `invalid_argument`.
 */
export function readConversationFile(
  path: string,
  opts: { format?: ConversationFormat; sample?: string; sessions?: string },
): Conversation {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new EpicacheError("invalid_argument", `cannot read ${path}: ${(e as Error).message}`);
  }
  const { conversation } = loadConversation(text, {
    format: opts.format,
    sampleId: opts.sample,
    id: basename(path).replace(/\.[^.]*$/, ""),
  });
  return opts.sessions === undefined ? conversation : selectSessions(conversation, opts.sessions);
}

/**
 * CPU seconds (user + system, all threads) the process has used: the work a command did, which a busy
 * machine stretches less than its wall time (--json of build and update; bench:update).
 */
export function cpuSeconds(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
}

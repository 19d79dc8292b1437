/** Command-line value parsing shared by the commands. */
import { EpicacheError } from "@epicache/shared";

/** A numeric option: `fallback` when absent, an `invalid_argument` error when malformed or rejected. */
export function numberOption(name: string, raw: string | undefined, fallback: number, check: (n: number) => boolean): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (raw.trim() === "" || !Number.isFinite(n) || !check(n)) throw new EpicacheError("invalid_argument", `--${name} ${JSON.stringify(raw)} is not valid`);
  return n;
}

export const isPositiveInt = (n: number) => Number.isInteger(n) && n > 0;

/** Peak resident set size of this process so far. */
export function peakRssBytes(): number {
  return process.resourceUsage().maxRSS * 1024;
}

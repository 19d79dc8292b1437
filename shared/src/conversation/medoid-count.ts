/**
 * How many representative windows make an episode's patched prompt (EpiCache §3, the authors'
 * `medoid_number`): a count, or a share of the episode's windows so that a large episode is covered
 * as well as a small one.
 *
 * @example
 * ```ts
 * parseMedoidCount("3");   // 3
 * parseMedoidCount("25%"); // "25%"
 * medoidCount("25%", 40);  // 10
 * medoidCount(3, 2);       // 2
 * ```
 */
import { EpicacheError } from "../errors";

export type MedoidCount = number | `${number}%`;

const PERCENT = /^(\d+(?:\.\d+)?)%$/;

/** A count ("3") or a percentage ("25%") from text; `invalid_argument` otherwise. */
export function parseMedoidCount(text: string): MedoidCount {
  const t = text.trim();
  const percent = PERCENT.exec(t);
  if (percent) {
    const value = Number(percent[1]);
    if (value > 0 && value <= 100) return `${value}%`;
  } else if (/^\d+$/.test(t) && Number(t) >= 1) {
    return Number(t);
  }
  throw new EpicacheError(
    "invalid_argument",
    `n-medoid ${JSON.stringify(text)} is neither a positive count (3) nor a percentage in (0, 100] (25%)`,
  );
}

/** Representative windows for an episode of `members` windows: at least one, at most all. */
export function medoidCount(spec: MedoidCount, members: number): number {
  if (members <= 0) return 0;
  if (typeof spec === "number") {
    if (!Number.isInteger(spec) || spec < 1)
      throw new EpicacheError(
        "invalid_argument",
        `n-medoid must be a positive integer, got ${spec}`,
      );
    return Math.min(spec, members);
  }
  const percent = Number(spec.slice(0, -1));
  if (!(percent > 0 && percent <= 100))
    throw new EpicacheError("invalid_argument", `n-medoid ${spec} is not a percentage in (0, 100]`);
  return Math.min(members, Math.max(1, Math.round((percent / 100) * members)));
}

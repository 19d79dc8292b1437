/**
 * Paired bootstrap intervals: whether one method beats another on the same questions by more than
 * the questions' own spread. With a few hundred questions of a small model one question moves F1 by
 * a fraction of a point, so every comparison in the README carries its 95% interval.
 */
import { seededRandom } from "../runtime/sampling";

export interface PairedInterval {
  /** Mean of a − b over the pairs. */
  mean: number;
  /** The interval's bounds (2.5th and 97.5th percentiles of the resampled means at level 0.95). */
  low: number;
  high: number;
  /** Pairs compared. */
  n: number;
}

/**
 * The mean difference of paired samples and its percentile bootstrap interval: `resamples` (default
 * 10,000) draws of n pairs with replacement, seeded (default 1) so the report does not change from run
 * to run. NaN bounds for no pairs.
 *
 * @example pairedBootstrap([0.5, 0.4, 0.9], [0.2, 0.4, 0.5]) // { mean: 0.2333…, low: 0, high: 0.3666…, n: 3 }
 */
export function pairedBootstrap(
  a: readonly number[],
  b: readonly number[],
  opts: { resamples?: number; seed?: number; level?: number } = {},
): PairedInterval {
  if (a.length !== b.length)
    throw new Error(`pairedBootstrap: ${a.length} against ${b.length} samples`);
  const n = a.length;
  if (n === 0) return { mean: NaN, low: NaN, high: NaN, n };
  const d = a.map((x, i) => x - b[i]);
  const mean = d.reduce((s, x) => s + x, 0) / n;
  const R = opts.resamples ?? 10_000;
  const random = seededRandom(opts.seed ?? 1);
  const means = new Float64Array(R);
  for (let r = 0; r < R; r++) {
    let s = 0;
    for (let i = 0; i < n; i++) s += d[Math.floor(random() * n)];
    means[r] = s / n;
  }
  means.sort();
  const tail = (1 - (opts.level ?? 0.95)) / 2;
  const at = (q: number) => means[Math.min(R - 1, Math.max(0, Math.round(q * (R - 1))))];
  return { mean, low: at(tail), high: at(1 - tail), n };
}

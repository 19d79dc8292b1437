/**
 * Layer budgets from a per-layer sensitivity: M_ℓ = s_ℓ^α / Σ_j s_j^α · L·M, no layer below a floor,
 * integers that sum to exactly L·M. The `output` allocation feeds it each layer's next-token KL when
 * squeezed alone, with α chosen on calibration text (calibrate.ts); the authors' rule
 * (`official`) is officialBudgets below.
 */
import { EpicacheError } from "@epicache/shared";

export interface LayerBudgetOptions {
  /** Sharpness α (0 gives uniform budgets). Default 2. */
  alpha?: number;
  /** The least a layer gets, as a fraction of M. Default 1/4. */
  floorFraction?: number;
}

/** Per-layer budgets (entries per KV head) from per-layer sensitivities s_ℓ ≥ 0 and the mean budget M. */
export function layerBudgets(
  sensitivity: readonly number[],
  M: number,
  opts: LayerBudgetOptions = {},
): number[] {
  const L = sensitivity.length;
  const alpha = opts.alpha ?? 2;
  if (L === 0) throw new EpicacheError("invalid_argument", "no layers to allocate to");
  if (!Number.isInteger(M) || M < 1)
    throw new EpicacheError("invalid_argument", `budget ${M} is not a positive integer`);
  if (!(alpha >= 0)) throw new EpicacheError("invalid_argument", `alpha ${alpha} must be ≥ 0`);
  if (sensitivity.some((s) => !Number.isFinite(s)))
    throw new EpicacheError("invalid_argument", "sensitivities must be finite");
  const total = L * M;
  const floor = Math.max(1, Math.floor(M * (opts.floorFraction ?? 0.25)));
  const weights: number[] = sensitivity.map((s) => (alpha === 0 ? 1 : Math.max(s, 0) ** alpha));
  if (!weights.some((w) => w > 0)) weights.fill(1);
  // Water-filling: layers whose share falls under the floor get the floor; the rest share what is
  // left in proportion to their weights, until no share falls under it.
  const pinned = new Array<boolean>(L).fill(false);
  let share: number[];
  for (;;) {
    const free = weights.reduce((sum, w, l) => (pinned[l] ? sum : sum + w), 0);
    const left = total - floor * pinned.filter(Boolean).length;
    share = weights.map((w, l) =>
      pinned[l] ? floor : free > 0 ? (w / free) * left : left / pinned.filter((p) => !p).length,
    );
    const under = share.findIndex((v, l) => !pinned[l] && v < floor);
    if (under < 0) break;
    for (let l = 0; l < L; l++) if (!pinned[l] && share[l] < floor) pinned[l] = true;
  }
  // Largest remainders: integers summing to L·M.
  const out = share.map(Math.floor);
  let rest = total - out.reduce((a, b) => a + b, 0);
  const order = share
    .map((v, l) => [v - Math.floor(v), l] as const)
    .sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  for (let i = 0; rest > 0; i = (i + 1) % L, rest--) out[order[i][1]]++;
  return out;
}

/** The authors' sharpness for Llama-family models (their Qwen2.5 runs use 1.3). */
export const OFFICIAL_POWER = 1.1;

/**
 * The authors' rule as it is (apple/ml-epicache model/wrapper.py, `allocate_layer_budget`), from the
 * per-layer key similarities σ_ℓ of the "keys" protocol: σ min–max normalised, weight (1 − σ̂_ℓ)^power,
 * M_ℓ = ⌊weight_ℓ · L·M / Σ weight⌋, then raised to at least max(1, ⌊M/4⌋). The floor comes after
 * the split, so the total can pass L·M by a few percent (the least similar layers keep their share
 * and the most similar ones are raised to the floor); equal similarities give M everywhere.
 *
 * @example officialBudgets([0.5, 0.75, 1], 100, 1) // [200, 100, 25]: σ̂ = [0, 0.5, 1]
 */
export function officialBudgets(
  similarity: readonly number[],
  M: number,
  power = OFFICIAL_POWER,
): number[] {
  if (similarity.length === 0)
    throw new EpicacheError("invalid_argument", "no layers to allocate to");
  if (!Number.isInteger(M) || M < 1)
    throw new EpicacheError("invalid_argument", `budget ${M} is not a positive integer`);
  if (similarity.some((s) => !Number.isFinite(s)))
    throw new EpicacheError("invalid_argument", "similarities must be finite");
  const min = Math.min(...similarity);
  const max = Math.max(...similarity);
  if (!(max > min)) return similarity.map(() => M);
  const weights = similarity.map((s) => (1 - (s - min) / (max - min)) ** power);
  const total = weights.reduce((a, b) => a + b, 0);
  const floor = Math.max(1, Math.floor(M / 4));
  return weights.map((w) => Math.max(floor, Math.floor((w * similarity.length * M) / total)));
}

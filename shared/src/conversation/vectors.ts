import { EpicacheError } from "../errors";

/**
 * An embedding: what the embedders return (Float32Array) or plain numbers (JSON, tests).
 *
 * @example
 * ```ts
 * const a: Vector = new Float32Array([0.6, 0.8]);
 * const b: Vector = [1, 0];
 * cosine(a, b); // 0.6
 * ```
 */
export type Vector = Float32Array | readonly number[];

/**
 * `v / ‖v‖₂` as a new Float32Array (sums in float64). The zero vector stays zero: it has no direction,
 * and its cosine with anything is 0. Non-finite entries are `invalid_argument`.
 *
 * @example
 * ```ts
 * l2Normalize([3, 4]); // Float32Array [0.6, 0.8]
 * ```
 */
export function l2Normalize(v: Vector): Float32Array {
  checkFinite(v, "vector");
  const norm = Math.sqrt(dot(v, v));
  const out = new Float32Array(v.length);
  if (norm === 0) return out;
  for (let i = 0; i < v.length; i++) out[i] = v[i] / norm;
  return out;
}

/**
 * The cosine similarity of `a` and `b`, in [-1, 1] (computed in float64, clamped against rounding);
 * 0 when either is the zero vector. Different lengths or non-finite entries are `invalid_argument`.
 *
 * @example
 * ```ts
 * cosine([1, 0], [1, 1]); // 0.7071…
 * cosine(new Float32Array([1, 2]), [2, 4]); // 1
 * ```
 */
export function cosine(a: Vector, b: Vector): number {
  checkSameLength(a, b, "vectors");
  checkFinite(a, "first vector");
  checkFinite(b, "second vector");
  return cosineUnchecked(a, b);
}

/** {@link cosine} without the argument checks, for callers that have made them once. */
export function cosineUnchecked(a: Vector, b: Vector): number {
  const denominator = Math.sqrt(dot(a, a)) * Math.sqrt(dot(b, b));
  if (denominator === 0) return 0;
  return Math.min(1, Math.max(-1, dot(a, b) / denominator));
}

/** `invalid_argument` unless `a` and `b` have the same length. */
export function checkSameLength(a: Vector, b: Vector, what: string): void {
  if (a.length !== b.length) {
    throw new EpicacheError(
      "invalid_argument",
      `${what} differ in dimension: ${a.length} and ${b.length}`,
    );
  }
}

/** `invalid_argument` when an entry is NaN or infinite (it would silently decide every comparison). */
export function checkFinite(v: Vector, what: string): void {
  for (let i = 0; i < v.length; i++) {
    if (!Number.isFinite(v[i]))
      throw new EpicacheError(
        "invalid_argument",
        `${what} has a non-finite entry at ${i}: ${v[i]}`,
      );
  }
}

function dot(a: Vector, b: Vector): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += a[i] * b[i];
  return sum;
}

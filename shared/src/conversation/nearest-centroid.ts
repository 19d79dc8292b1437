import { EpicacheError } from "../errors";
import { checkFinite, checkSameLength, cosineUnchecked, type Vector } from "./vectors";

/**
 * What {@link nearestCentroid} returns.
 *
 * @example
 * ```ts
 * const { index, cosines }: NearestCentroid = nearestCentroid(question, manifest.centroids);
 * ```
 */
export interface NearestCentroid {
  /** The index of the centroid with the highest cosine (the lower index on ties). */
  readonly index: number;
  /** The cosine of the query with every centroid, in centroid order. */
  readonly cosines: readonly number[];
}

/**
 * Routes a question to an episode (docs/design.md §1, stage 3): the centroid with the highest cosine
 * similarity to `query`. Centroids are compared by direction only (k-means centroids of normalised
 * embeddings are shorter than 1, and unequally so), which is the cosine; ties go to the lower index. No
 * centroids, a dimension mismatch or a non-finite entry is `invalid_argument`.
 *
 * @example
 * ```ts
 * nearestCentroid([1, 0], [[0, 2], [1, 1], [2, 2]]);
 * // { index: 1, cosines: [0, 0.7071…, 0.7071…] }   (1 and 2 point the same way: the lower index wins)
 * ```
 */
export function nearestCentroid(query: Vector, centroids: readonly Vector[]): NearestCentroid {
  if (centroids.length === 0)
    throw new EpicacheError("invalid_argument", "nearestCentroid needs at least one centroid");
  checkFinite(query, "query");
  const cosines = centroids.map((centroid, i) => {
    checkSameLength(query, centroid, `query and centroid ${i}`);
    checkFinite(centroid, `centroid ${i}`);
    return cosineUnchecked(query, centroid);
  });
  let index = 0;
  for (let i = 1; i < cosines.length; i++) if (cosines[i] > cosines[index]) index = i;
  return { index, cosines };
}

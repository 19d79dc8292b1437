import { EpicacheError } from "../errors";

/**
 * Window vectors as routing stores them: int8, one byte per dimension, in base64. Each vector is
 * scaled so that its largest |entry| is 127 and rounded; the scale is not kept, because routing
 * compares windows with a question by cosine, which does not depend on a vector's length. 384
 * dimensions take 384 bytes (512 characters of base64) per window instead of 1,536 as float32.
 *
 * Byte layout of the decoded base64: vector 0's `dimension` int8 entries, then vector 1's, and so on;
 * no header (the dimension is the embedder's, recorded next to it).
 *
 * @example
 * ```ts
 * const text = encodeWindowVectors([[0.6, -0.8], [1, 0]]); // "X4F/AA=="
 * decodeWindowVectors(text, 2); // [Int8Array [95, -127], Int8Array [127, 0]]
 * ```
 */
export function encodeWindowVectors(vectors: readonly ArrayLike<number>[]): string {
  const dimension = vectors[0]?.length ?? 0;
  const bytes = new Int8Array(vectors.length * dimension);
  vectors.forEach((v, i) => {
    if (v.length !== dimension)
      throw new EpicacheError(
        "invalid_argument",
        `window vector ${i} has ${v.length} entries, vector 0 has ${dimension}`,
      );
    let max = 0;
    for (let d = 0; d < dimension; d++) {
      if (!Number.isFinite(v[d]))
        throw new EpicacheError(
          "invalid_argument",
          `window vector ${i} has a non-finite entry at ${d}: ${v[d]}`,
        );
      max = Math.max(max, Math.abs(v[d]));
    }
    // The zero vector stays zero: its cosine with anything is 0 either way.
    const scale = max === 0 ? 0 : 127 / max;
    for (let d = 0; d < dimension; d++) bytes[i * dimension + d] = Math.round(v[d] * scale);
  });
  let binary = "";
  // In slices: String.fromCharCode takes its arguments on the stack.
  const u8 = new Uint8Array(bytes.buffer);
  for (let at = 0; at < u8.length; at += 0x8000)
    binary += String.fromCharCode(...u8.subarray(at, at + 0x8000));
  return btoa(binary);
}

/**
 * The vectors of {@link encodeWindowVectors}' text, as int8 views of one buffer (`dimension` entries
 * each). Text that is not base64, or whose length is not a whole number of vectors, is
 * `invalid_argument`.
 *
 * @example
 * ```ts
 * const windows = decodeWindowVectors(manifest.routing.windowVectors, manifest.embedder.dimension);
 * windows.length; // the number of windows
 * ```
 */
export function decodeWindowVectors(text: string, dimension: number): Int8Array[] {
  if (!Number.isInteger(dimension) || dimension < 1)
    throw new EpicacheError(
      "invalid_argument",
      `dimension must be a positive integer, got ${dimension}`,
    );
  let binary: string;
  try {
    binary = atob(text);
  } catch {
    throw new EpicacheError("invalid_argument", "window vectors are not base64");
  }
  if (binary.length % dimension !== 0)
    throw new EpicacheError(
      "invalid_argument",
      `window vectors hold ${binary.length} bytes, not a multiple of the dimension ${dimension}`,
    );
  const bytes = new Int8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = (binary.charCodeAt(i) << 24) >> 24;
  return Array.from({ length: binary.length / dimension }, (_, i) =>
    bytes.subarray(i * dimension, (i + 1) * dimension),
  );
}

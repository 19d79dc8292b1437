import { describe, expect, it } from "vitest";
import { meanPoolNormalized } from "./pooling";

describe("meanPoolNormalized", () => {
  it("averages over the mask only and normalises", () => {
    // [batch 2, seq 3, dim 2]: row 0 has two tokens, row 1 one token and two padded positions.
    const hidden = Float32Array.from([3, 0, 1, 4, 99, 99, 0, 2, 50, -50, 7, 7]);
    const mask = BigInt64Array.from([1n, 1n, 0n, 1n, 0n, 0n]);
    const [a, b] = meanPoolNormalized(hidden, mask, 2, 3, 2);
    // mean (2, 2) → (1/√2, 1/√2); mean (0, 2) → (0, 1)
    expect(a[0]).toBeCloseTo(Math.SQRT1_2, 7);
    expect(a[1]).toBeCloseTo(Math.SQRT1_2, 7);
    expect(Array.from(b)).toEqual([0, 1]);
  });

  it("gives the same vector whatever the padding", () => {
    const hidden = Float32Array.from([0.5, -1, 2, 0.25, 1, 3]); // [1, 2, 3]
    const [short] = meanPoolNormalized(hidden, [1, 1], 1, 2, 3);
    const padded = new Float32Array(5 * 3);
    padded.set(hidden);
    padded.fill(1e6, 6); // padding states are garbage
    const [long] = meanPoolNormalized(padded, [1, 1, 0, 0, 0], 1, 5, 3);
    expect(Array.from(long)).toEqual(Array.from(short));
  });

  it("rejects a row without tokens and mismatched sizes", () => {
    expect(() => meanPoolNormalized(new Float32Array(4), [0, 0], 1, 2, 2)).toThrow(/0 tokens/);
    expect(() => meanPoolNormalized(new Float32Array(3), [1, 1], 1, 2, 2)).toThrow(
      /for \[1, 2, 2\]/,
    );
  });
});

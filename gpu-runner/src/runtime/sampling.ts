/** Choosing the next token from logits: greedy (argmax) or temperature sampling with a seeded PRNG. */

/** Index of the largest value; the first one on ties (as llama.cpp's greedy sampler). */
export function argmax(logits: Float32Array, offset = 0, length = logits.length - offset): number {
  let best = 0;
  let bestValue = -Infinity;
  for (let i = 0; i < length; i++) {
    const v = logits[offset + i];
    if (v > bestValue) {
      bestValue = v;
      best = i;
    }
  }
  return best;
}

/** mulberry32: a small, fast, seedable PRNG in [0, 1). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Samples from softmax(logits / temperature). */
export function sampleWithTemperature(
  logits: Float32Array,
  temperature: number,
  random: () => number,
  offset = 0,
  length = logits.length - offset,
): number {
  let max = -Infinity;
  for (let i = 0; i < length; i++) max = Math.max(max, logits[offset + i]);
  const p = new Float64Array(length);
  let sum = 0;
  for (let i = 0; i < length; i++) {
    p[i] = Math.exp((logits[offset + i] - max) / temperature);
    sum += p[i];
  }
  let u = random() * sum;
  for (let i = 0; i < length; i++) {
    u -= p[i];
    if (u <= 0) return i;
  }
  return length - 1;
}

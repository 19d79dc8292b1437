/**
 * StreamingLLM (Xiao et al. 2023): keep the first `sinks` tokens of the history (attention sinks)
 * and the most recent ones; no prompt. Every head keeps the same entries (uniform allocation). Its
 * paper assigns positions within the cache, so with compact positions it compacts after every block.
 */
import type { KeepPolicy } from "../prefill";

export const STREAMING_SINKS = 128;

export function streamingLlmPolicy(sinks = STREAMING_SINKS): KeepPolicy {
  return {
    name: "streamingllm",
    allocation: "uniform",
    positionsInCache: true,
    scoringPrompt: () => null,
    score: ({ cache, layer }) => {
      const { positions, lengths, capacity } = cache.layers[layer];
      return Array.from(lengths, (n, h) =>
        Float32Array.from(positions.subarray(h * capacity, h * capacity + n), (p) =>
          p < sinks ? Infinity : p,
        ),
      );
    },
  };
}

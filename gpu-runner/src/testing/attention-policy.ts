import type { KeepPolicy } from "../prefill";

/**
 * A keep policy for tests: scores entries by the attention of a fixed scoring prompt (the shape of
 * EpiCache's scorer, without its text).
 */
export function attentionPolicy(prompt: readonly number[] = [40, 41, 42]): KeepPolicy {
  return {
    name: "test-attention",
    scoringPrompt: () => prompt,
    score: ({ attention }) => {
      if (!attention) throw new Error("expected attention scores");
      return attention;
    },
  };
}

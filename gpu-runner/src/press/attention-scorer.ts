/**
 * The scorer of every prompt-based method (EpiCache, SnapKV, InfiniPot, KVzip): an entry's score is
 * the attention the scoring prompt gives it (the graph's max over the GQA group's heads and the
 * prompt's positions). Methods differ only in the prompt.
 */
import { EpicacheError } from "@epicache/shared";
import type { KeepPolicy, LayerScoring } from "../prefill";

export function attentionPolicy(
  name: string,
  prompt: (block: readonly number[]) => readonly number[],
): KeepPolicy {
  return {
    name,
    scoringPrompt: (block) => {
      const p = prompt(block);
      if (p.length === 0)
        throw new EpicacheError("invalid_argument", `${name}: the scoring prompt is empty`);
      return p;
    },
    score: ({ attention, layer }: LayerScoring) => {
      if (!attention) throw new Error(`${name}: layer ${layer} has no attention scores`);
      return attention;
    },
  };
}

/**
 * SnapKV (Li et al. 2024) in block prefill: the last `window` tokens of each block, repeated after it
 * as the scoring prompt, vote for the entries they attend to.
 */
import type { KeepPolicy } from "../prefill";
import { attentionPolicy } from "./attention-scorer";

export const SNAPKV_WINDOW = 64;

export function snapkvPolicy(window = SNAPKV_WINDOW): KeepPolicy {
  return attentionPolicy("snapkv", (block) => block.slice(-window));
}

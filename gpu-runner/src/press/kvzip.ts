/**
 * KVzip (Kim et al. 2025): the model is asked to repeat the context and given the block itself as
 * the answer; entries are scored by the attention of that reconstruction.
 */
import type { KeepPolicy } from "../prefill";
import { attentionPolicy } from "./attention-scorer";
import type { ChatFrame } from "./chat-frame";

export const KVZIP_PROMPT = "Repeat the part of the previous context exactly.";

export function kvzipPolicy(frame: ChatFrame): KeepPolicy {
  const request = frame.close(`\n\n${KVZIP_PROMPT}`);
  return attentionPolicy("kvzip", (block) => [...request, ...block]);
}

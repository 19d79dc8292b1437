/**
 * InfiniPot (Kim et al. 2024): entries are scored by the attention of a fixed summarisation request.
 */
import type { KeepPolicy } from "../prefill";
import { attentionPolicy } from "./attention-scorer";
import type { ChatFrame } from "./chat-frame";

export const INFINIPOT_PROMPT =
  "Summarize the previous context highlighting the most important parts.";

export function infinipotPolicy(frame: ChatFrame): KeepPolicy {
  const prompt = frame.close(`\n\n${INFINIPOT_PROMPT}`);
  return attentionPolicy("infinipot", () => prompt);
}

/**
 * EpiCache (Kim et al. 2025): entries are scored by the attention of the episode's patched prompt,
 * an instruction, the assistant header, then the episode's representative windows, as if the model
 * were about to recall them. Each episode gets its own cache, built with its own prompt.
 */
import type { KeepPolicy } from "../prefill";
import { attentionPolicy } from "./attention-scorer";
import type { ChatFrame } from "./chat-frame";

/** The authors' instruction (apple/ml-epicache, `token_scoring`'s "clustering" prompt), word for word. */
export const EPICACHE_INSTRUCTION =
  "Extract essential information from this conversation segment. Identify speaker names, personas, key events with dates/times, " +
  "personal details, commitments, opinions, relationships, emotional moments, and unique experiences.";

/** The patched prompt: instruction, assistant header, representative text. */
export function patchedPrompt(frame: ChatFrame, representativeText: string): number[] {
  return [...frame.close(`\n\n${EPICACHE_INSTRUCTION}`), ...frame.text(representativeText)];
}

export function epicachePolicy(frame: ChatFrame, representativeText: string): KeepPolicy {
  const prompt = patchedPrompt(frame, representativeText);
  return attentionPolicy("epicache", () => prompt);
}

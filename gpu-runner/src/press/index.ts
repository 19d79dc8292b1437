/**
 * Keep policies for block-wise prefill (prefill/): each method is a small scorer on one base.
 */
import { EpicacheError } from "@epicache/shared";
import type { KeepPolicy } from "../prefill";
import type { ChatFrame } from "./chat-frame";
import { epicachePolicy } from "./epicache";
import { infinipotPolicy } from "./infinipot";
import { keydiffPolicy } from "./keydiff";
import { kvzipPolicy } from "./kvzip";
import { snapkvPolicy } from "./snapkv";
import { streamingLlmPolicy } from "./streaming-llm";

export { chatFrame, type ChatFrame } from "./chat-frame";
export { attentionPolicy } from "./attention-scorer";
export { epicachePolicy, patchedPrompt, EPICACHE_INSTRUCTION } from "./epicache";
export { snapkvPolicy, SNAPKV_WINDOW } from "./snapkv";
export { infinipotPolicy, INFINIPOT_PROMPT } from "./infinipot";
export { kvzipPolicy, KVZIP_PROMPT } from "./kvzip";
export { keydiffPolicy } from "./keydiff";
export { streamingLlmPolicy, STREAMING_SINKS } from "./streaming-llm";

export const METHODS = ["full", "epicache", "snapkv", "infinipot", "kvzip", "keydiff", "streamingllm"] as const;
export type Method = (typeof METHODS)[number];

export function isMethod(s: string): s is Method {
  return (METHODS as readonly string[]).includes(s);
}

/**
 * The keep policy of a method (null for Full KV). EpiCache needs the episode's representative text;
 * the others ignore it.
 */
export function policyFor(method: Method, frame: ChatFrame, representativeText?: string): KeepPolicy | null {
  switch (method) {
    case "full":
      return null;
    case "epicache":
      if (representativeText === undefined) throw new EpicacheError("invalid_argument", "epicache needs an episode's representative text");
      return epicachePolicy(frame, representativeText);
    case "snapkv":
      return snapkvPolicy();
    case "infinipot":
      return infinipotPolicy(frame);
    case "kvzip":
      return kvzipPolicy(frame);
    case "keydiff":
      return keydiffPolicy;
    case "streamingllm":
      return streamingLlmPolicy();
  }
}

/**
 * The keep policy of each build method, by name (kvpress's PRESS_REGISTRY): what the methods are is
 * data in shared (BUILD_METHOD_REGISTRY), how each one scores lives here. The type makes a method
 * without a policy, or a policy without a method, a compile error.
 */
import { EpicacheError, type BuildMethod } from "@epicache/shared";
import type { KeepPolicy } from "../prefill";
import type { ChatFrame } from "./chat-frame";
import { epicachePolicy } from "./epicache";
import { infinipotPolicy } from "./infinipot";
import { keydiffPolicy } from "./keydiff";
import { kvzipPolicy } from "./kvzip";
import { snapkvPolicy } from "./snapkv";
import { streamingLlmPolicy } from "./streaming-llm";

/**
 * A method's policy for one cache; null keeps every entry (Full KV). EpiCache needs the episode's
 * representative text; the others ignore it.
 */
export type PolicyFactory = (frame: ChatFrame, representativeText?: string) => KeepPolicy | null;

export const PRESS_REGISTRY: Readonly<Record<BuildMethod, PolicyFactory>> = {
  full: () => null,
  epicache: (frame, representativeText) => {
    if (representativeText === undefined)
      throw new EpicacheError(
        "invalid_argument",
        "epicache needs an episode's representative text",
      );
    return epicachePolicy(frame, representativeText);
  },
  snapkv: () => snapkvPolicy(),
  infinipot: (frame) => infinipotPolicy(frame),
  kvzip: (frame) => kvzipPolicy(frame),
  keydiff: () => keydiffPolicy,
  streamingllm: () => streamingLlmPolicy(),
};

/** The keep policy of a method (null for Full KV); see {@link PolicyFactory}. */
export function policyFor(
  method: BuildMethod,
  frame: ChatFrame,
  representativeText?: string,
): KeepPolicy | null {
  return PRESS_REGISTRY[method](frame, representativeText);
}

/**
 * Keep policies for block-wise prefill (prefill/): each method is a small scorer on one base.
 */
export { chatFrame, type ChatFrame } from "./chat-frame";
export { attentionPolicy } from "./attention-scorer";
export { epicachePolicy, patchedPrompt, EPICACHE_INSTRUCTION } from "./epicache";
export { snapkvPolicy, SNAPKV_WINDOW } from "./snapkv";
export { infinipotPolicy, INFINIPOT_PROMPT } from "./infinipot";
export { kvzipPolicy, KVZIP_PROMPT } from "./kvzip";
export { keydiffPolicy } from "./keydiff";
export { streamingLlmPolicy, STREAMING_SINKS } from "./streaming-llm";
export { PRESS_REGISTRY, policyFor, type PolicyFactory } from "./registry";

export * from "./block-prefill";

export * from "./block-prefill";
export * from "./positions";

export * from "./errors";
export * from "./conversation";
export * from "./kvc";
export * from "./methods";
export * from "./store";
export * from "./runner-api";
export * from "./webhooks";
export * from "./routing";

export * from "./errors";
export * from "./conversation";
export * from "./kvc";

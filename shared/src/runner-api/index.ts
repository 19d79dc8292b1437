/** The runner's HTTP API: request and response schemas, and the signatures between edge and runner. */
export * from "./schemas";
export * from "./signature";

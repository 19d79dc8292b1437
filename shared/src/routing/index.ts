/** Picking a runner for a request: rendezvous hashing over the configured runners. */
export * from "./rendezvous";

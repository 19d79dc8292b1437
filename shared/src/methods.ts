/**
 * The build methods, as data: one place that says what each method is (kvpress keeps a registry of
 * presses the same way). The runner's keep policies, the runner API's enum, the CLI's choices and the
 * evaluation's variants and labels all derive from it.
 */

/** What a build method is, beyond its keep policy (which the runner holds, gpu-runner/src/press). */
export interface BuildMethodInfo {
  /** The name in tables and legends. */
  label: string;
  /** One cache per episode, questions routed to the nearest; otherwise one cache for the whole conversation. */
  episodic: boolean;
  /** Evicts down to a KV budget; otherwise every entry is kept (and the cache has no budget). */
  budgeted: boolean;
  /** Sensitivity-aware layer budgets unless a build says otherwise; otherwise every layer gets the budget. */
  alloc: boolean;
}

/**
 * Every build method by name, in the order the CLI lists them.
 *
 * @example
 * ```ts
 * BUILD_METHOD_REGISTRY.kvzip.label; // "KVzip"
 * BUILD_METHOD_REGISTRY.epicache.episodic; // true
 * ```
 */
export const BUILD_METHOD_REGISTRY = {
  full: { label: "Full KV", episodic: false, budgeted: false, alloc: false },
  epicache: { label: "EpiCache", episodic: true, budgeted: true, alloc: true },
  snapkv: { label: "SnapKV", episodic: false, budgeted: true, alloc: false },
  infinipot: { label: "InfiniPot", episodic: false, budgeted: true, alloc: false },
  kvzip: { label: "KVzip", episodic: false, budgeted: true, alloc: false },
  keydiff: { label: "KeyDiff", episodic: false, budgeted: true, alloc: false },
  streamingllm: { label: "StreamingLLM", episodic: false, budgeted: true, alloc: false },
} as const satisfies Record<string, BuildMethodInfo>;

export type BuildMethod = keyof typeof BUILD_METHOD_REGISTRY;

/**
 * The build methods' names, in registry order.
 *
 * @example
 * ```ts
 * BUILD_METHODS.join(", "); // "full, epicache, snapkv, infinipot, kvzip, keydiff, streamingllm"
 * ```
 */
export const BUILD_METHODS = Object.keys(BUILD_METHOD_REGISTRY) as readonly BuildMethod[];

/**
 * Whether a string names a build method (own keys only: "toString" is none).
 *
 * @example
 * ```ts
 * isBuildMethod("snapkv"); // true
 * isBuildMethod("recent"); // false: an evaluation variant, not a build method
 * ```
 */
export function isBuildMethod(name: string): name is BuildMethod {
  return Object.hasOwn(BUILD_METHOD_REGISTRY, name);
}

/**
 * How a build spreads its budget over layers: "uniform" (M everywhere), "official" (the authors'
 * rule on the "keys" layer profile), "output" (budgets ∝ KL_ℓ^α on the "output" profile); see
 * gpu-runner/src/calibration/sensitivity-profile.ts.
 */
export const ALLOC_MODES = ["uniform", "official", "output"] as const;
export type AllocMode = (typeof ALLOC_MODES)[number];

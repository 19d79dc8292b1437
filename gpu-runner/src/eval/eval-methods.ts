/**
 * The methods an evaluation runs, by name. Each answers from the caches of one build method
 * (BUILD_METHOD_REGISTRY), some built with options of their own: another layer allocation, other
 * positions, a shorter history. Adding a variant is one entry here; runEval, the reports' labels and
 * order and the CLI's choices follow it.
 */
import { BUILD_METHOD_REGISTRY, type BuildMethodInfo, type BuildMethod } from "@epicache/shared";
import type { AllocMode, PositionMode } from "../prefill";

export interface EvalMethodInfo {
  /** The build method whose caches it answers from. */
  method: BuildMethod;
  /** The name in tables and legends; the build method's when absent. */
  label?: string;
  /** The layer allocation, instead of the build method's default. */
  alloc?: AllocMode;
  /** Where kept entries sit, instead of the evaluation's --positions. */
  positions?: PositionMode;
  /**
   * Builds from the recent window only (the last --max-context tokens, in whole turns: what an
   * assistant with a truncated prompt sees) instead of the evaluated history.
   */
  recentOnly?: boolean;
}

// In the order of the CLI's default --methods: config.json records that list, and a rerun with
// another order would not resume an earlier run.
const registry = {
  full: { method: "full" },
  epicache: { method: "epicache" },
  "epicache-noalloc": { method: "epicache", label: "EpiCache (no alloc)", alloc: "uniform" },
  "epicache-original": { method: "epicache", label: "EpiCache (original positions)", positions: "original" },
  snapkv: { method: "snapkv" },
  infinipot: { method: "infinipot" },
  kvzip: { method: "kvzip" },
  keydiff: { method: "keydiff" },
  streamingllm: { method: "streamingllm" },
  recent: { method: "full", label: "Recent (truncated prompt)", recentOnly: true },
  "epicache-official": { method: "epicache", label: "EpiCache (authors' allocation)", alloc: "official" },
  "epicache-output": { method: "epicache", label: "EpiCache (output allocation)", alloc: "output" },
} satisfies Record<string, EvalMethodInfo>;

export type EvalMethod = keyof typeof registry;

/**
 * Every evaluation method by name: each build method under its own name, and variants of them.
 *
 * @example
 * ```ts
 * EVAL_METHOD_REGISTRY["epicache-noalloc"]; // { method: "epicache", label: "EpiCache (no alloc)", alloc: "uniform" }
 * ```
 */
export const EVAL_METHOD_REGISTRY: Readonly<Record<EvalMethod, EvalMethodInfo>> = registry;

/** The evaluation methods' names, in registry order (the default of `eval --methods`). */
export const EVAL_METHODS = Object.keys(registry) as readonly EvalMethod[];

/** Whether a string names an evaluation method (own keys only: "toString" is none). */
export function isEvalMethod(name: string): name is EvalMethod {
  return Object.hasOwn(registry, name);
}

/** What the build method an evaluation method answers from is: episodic, budgeted, … */
export function buildMethodOf(name: EvalMethod): BuildMethodInfo {
  return BUILD_METHOD_REGISTRY[EVAL_METHOD_REGISTRY[name].method];
}

/**
 * The name an evaluation method goes by in tables and legends.
 *
 * @example
 * ```ts
 * evalMethodLabel("kvzip"); // "KVzip"
 * evalMethodLabel("recent"); // "Recent (truncated prompt)"
 * ```
 */
export function evalMethodLabel(name: EvalMethod): string {
  return EVAL_METHOD_REGISTRY[name].label ?? buildMethodOf(name).label;
}

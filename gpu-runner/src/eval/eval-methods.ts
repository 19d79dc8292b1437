/**
 * The methods an evaluation runs, by name. Each answers from the caches of one build method
 * (BUILD_METHOD_REGISTRY), some built with options of their own: another layer allocation, other
 * positions, a shorter history. Adding a variant is one entry here; runEval, the reports' labels and
 * order and the CLI's choices follow it.
 */
import {
  BUILD_METHOD_REGISTRY,
  parseMedoidCount,
  type BuildMethodInfo,
  type BuildMethod,
  type MedoidCount,
} from "@epicache/shared";
import { ALLOC_MODES, type AllocMode } from "../calibration";
import { POSITION_MODES, type PositionMode } from "../prefill";

export interface EvalMethodInfo {
  /** The build method whose caches it answers from. */
  method: BuildMethod;
  /** The name in tables and legends; the build method's when absent. */
  label?: string;
  /** The layer allocation, instead of the build method's default. */
  alloc?: AllocMode;
  /** Where kept entries sit, instead of the evaluation's --positions. */
  positions?: PositionMode;
  /** Representative windows per episode, instead of the build's default. */
  nMedoid?: MedoidCount;
  /**
   * Builds from the recent window only (the last --max-context tokens, in whole turns: what an
   * assistant with a truncated prompt sees) instead of the evaluated history.
   */
  recentOnly?: boolean;
  /**
   * "session": the caches the service holds after a chat that grew one session at a time: a build of
   * the first session, then one update per session (a full build where the update policy calls for one).
   */
  updates?: "session";
}

// In the order of the CLI's default --methods: config.json records that list, and a rerun with
// another order would not resume an earlier run.
const registry = {
  full: { method: "full" },
  epicache: { method: "epicache" },
  "epicache-noalloc": { method: "epicache", label: "EpiCache (no alloc)", alloc: "uniform" },
  "epicache-original": {
    method: "epicache",
    label: "EpiCache (original positions)",
    positions: "original",
  },
  snapkv: { method: "snapkv" },
  infinipot: { method: "infinipot" },
  kvzip: { method: "kvzip" },
  keydiff: { method: "keydiff" },
  streamingllm: { method: "streamingllm" },
  recent: { method: "full", label: "Recent (truncated prompt)", recentOnly: true },
  "epicache-official": {
    method: "epicache",
    label: "EpiCache (authors' allocation)",
    alloc: "official",
  },
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

/**
 * Options a method's name may carry after a registry name, for sweeps: `epicache:n-medoid=3`,
 * `epicache:alloc=output:n-medoid=25%`, `epicache:updates=session`. Each is a build option of {@link EvalMethodInfo}.
 */
const OPTIONS: Record<string, (value: string) => Partial<EvalMethodInfo> | null> = {
  "n-medoid": (v) => {
    try {
      return { nMedoid: parseMedoidCount(v) };
    } catch {
      return null;
    }
  },
  alloc: (v) => ((ALLOC_MODES as readonly string[]).includes(v) ? { alloc: v as AllocMode } : null),
  positions: (v) =>
    (POSITION_MODES as readonly string[]).includes(v) ? { positions: v as PositionMode } : null,
  updates: (v) => (v === "session" ? { updates: "session" } : null),
};

/**
 * What an evaluation method's name stands for: a registry entry, with the options its name carries
 * applied; null when it names none.
 *
 * @example
 * ```ts
 * resolveEvalMethod("epicache:n-medoid=3"); // { method: "epicache", nMedoid: 3, label: "EpiCache (n-medoid 3)" }
 * ```
 */
export function resolveEvalMethod(name: string): EvalMethodInfo | null {
  const [base, ...options] = name.split(":");
  if (!Object.hasOwn(registry, base)) return null;
  let info: EvalMethodInfo = { ...EVAL_METHOD_REGISTRY[base as EvalMethod] };
  const said: string[] = [];
  for (const option of options) {
    const [key, value, ...rest] = option.split("=");
    const apply =
      Object.hasOwn(OPTIONS, key) && value !== undefined && rest.length === 0
        ? OPTIONS[key](value)
        : null;
    if (!apply) return null;
    info = { ...info, ...apply };
    said.push(`${key} ${value}`);
  }
  if (said.length > 0)
    info.label = `${info.label ?? BUILD_METHOD_REGISTRY[info.method].label} (${said.join(", ")})`;
  return info;
}

/** Whether a string names an evaluation method (own keys only: "toString" is none), with or without options. */
export function isEvalMethod(name: string): boolean {
  return resolveEvalMethod(name) !== null;
}

/** The base registry name of a method's name ("epicache" for "epicache:n-medoid=3"). */
export function baseEvalMethod(name: string): string {
  return name.split(":")[0];
}

/** What the build method an evaluation method answers from is: episodic, budgeted, … */
export function buildMethodOf(name: string): BuildMethodInfo {
  const info = resolveEvalMethod(name);
  if (!info) throw new Error(`buildMethodOf: "${name}" is no evaluation method`);
  return BUILD_METHOD_REGISTRY[info.method];
}

/**
 * The name an evaluation method goes by in tables and legends.
 *
 * @example
 * ```ts
 * evalMethodLabel("kvzip"); // "KVzip"
 * evalMethodLabel("recent"); // "Recent (truncated prompt)"
 * evalMethodLabel("epicache:n-medoid=25%"); // "EpiCache (n-medoid 25%)"
 * ```
 */
export function evalMethodLabel(name: string): string {
  const info = resolveEvalMethod(name);
  if (!info) throw new Error(`evalMethodLabel: "${name}" is no evaluation method`);
  return info.label ?? BUILD_METHOD_REGISTRY[info.method].label;
}

/**
 * The kernel family llama.cpp's CPU backend takes on this machine, which decides the order in which
 * its matrix products and attention sum (and so its last bits): `amx` (AMX tiles, with the AVX-512
 * VNNI kernel for small batches), `avx512` (AVX-512 without AMX), `avx2`, or `other`. The `ggml`
 * numerics reproduce the `amx` path bit for bit (`ggml-ops.ts`); on the others they are close to
 * llama.cpp, not identical.
 */
import { readFileSync } from "node:fs";

export type CpuPath = "amx" | "avx512" | "avx2" | "other";

/** The CPU paths whose arithmetic the `ggml` numerics reproduce bit for bit. */
export const EMULATED_CPU_PATHS: readonly CpuPath[] = ["amx"];

/**
 * Reads llama.cpp's system info line (`CPU : SSE3 = 1 | … | AVX512 = 1 | … | AMX_INT8 = 1 | …`).
 *
 * @example cpuPathOf("CPU : AVX2 = 1 | F16C = 1 | FMA = 1 | LLAMAFILE = 1 | REPACK = 1 |") // "avx2"
 */
export function cpuPathOf(systemInfo: string): CpuPath {
  const on = (flag: string) => new RegExp(`\\b${flag} = 1\\b`).test(systemInfo);
  if (on("AMX_INT8")) return "amx";
  if (on("AVX512")) return "avx512";
  if (on("AVX2")) return "avx2";
  return "other";
}

/**
 * The path llama.cpp's prebuilt x86 backends pick, from the CPU's own flags (`/proc/cpuinfo` on
 * Linux): what `epicache generate --json` reports without loading llama.cpp. `other` where the flags
 * cannot be read.
 */
export function hostCpuPath(cpuinfo?: string): CpuPath {
  let text = cpuinfo;
  if (text === undefined) {
    try {
      text = readFileSync("/proc/cpuinfo", "utf8");
    } catch {
      return "other";
    }
  }
  const flags = new Set(/^flags\s*:\s*(.*)$/m.exec(text)?.[1].split(/\s+/) ?? []);
  if (flags.has("amx_int8") && flags.has("amx_tile")) return "amx";
  if (flags.has("avx512f") && flags.has("avx512bw") && flags.has("avx512vl")) return "avx512";
  if (flags.has("avx2") && flags.has("fma") && flags.has("f16c")) return "avx2";
  return "other";
}

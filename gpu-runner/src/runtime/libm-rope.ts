/**
 * RoPE cos/sin as llama.cpp computes them: the angles stepped in f32 (θ ← θ·base^(−2/D)) and their
 * cos/sin taken by the C library's `cosf`/`sinf`, which are not always correctly rounded (about 1% of
 * glibc's results differ by one ULP from the rounded true value). JavaScript has no `cosf`, so the
 * table is computed once per (base, head dim, length) through Python's ctypes and cached beside the
 * built graphs. Used only by `ggml` numerics; without Python the caller falls back to correctly
 * rounded values.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, renameSync } from "node:fs";
import { join } from "node:path";

const SCRIPT = `
import ctypes, ctypes.util, struct, sys
libm = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
for fn in ("cosf", "sinf", "powf"):
    getattr(libm, fn).restype = ctypes.c_float
libm.cosf.argtypes = [ctypes.c_float]; libm.sinf.argtypes = [ctypes.c_float]
libm.powf.argtypes = [ctypes.c_float, ctypes.c_float]
f32 = lambda x: struct.unpack("f", struct.pack("f", x))[0]
base, dim, n, out = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
ts = libm.powf(base, f32(-2.0 / dim))
buf = bytearray()
for p in range(n):
    theta = f32(float(p))
    for i in range(dim // 2):
        buf += struct.pack("<ff", libm.cosf(theta), libm.sinf(theta))
        theta = f32(theta * ts)
open(out, "wb").write(buf)
`;

/** Interleaved [n, D/2, 2] (cos, sin) table, or null when it cannot be computed here. */
export function libmRopeTable(
  base: number,
  headDim: number,
  n: number,
  dir: string,
  log?: (m: string) => void,
): Float32Array | null {
  const file = join(dir, `rope-libm-${base}-${headDim}-${n}.bin`);
  if (!existsSync(file)) {
    mkdirSync(dir, { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    const python = process.env.EPICACHE_PYTHON || "python3";
    const r = spawnSync(python, ["-c", SCRIPT, String(base), String(headDim), String(n), tmp], {
      encoding: "utf8",
    });
    if (r.status !== 0 || !existsSync(tmp)) {
      log?.(
        `could not compute libm RoPE tables with ${python} (${(r.stderr || String(r.error)).trim().split("\n").pop()}); using correctly rounded cos/sin`,
      );
      return null;
    }
    renameSync(tmp, file);
  }
  const bytes = readFileSync(file);
  return new Float32Array(
    bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength),
  );
}

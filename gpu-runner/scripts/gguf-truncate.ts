/**
 * Writes a copy of a GGUF file that keeps only its first N transformer blocks (tensor bytes copied
 * as they are), for bisecting where two runtimes start to differ:
 *
 *   npx tsx gpu-runner/scripts/gguf-truncate.ts MODEL.gguf N OUT.gguf
 *
 * Metadata keeps its types (u32 numbers, f32 for the llama float keys, i32 arrays).
 */
import { writeFileSync } from "node:fs";
import { GGML_TYPES, openGguf, type GgmlTypeName } from "../src/gguf";

const [src, nArg, dst] = process.argv.slice(2);
const N = Number(nArg);
if (!src || !dst || !Number.isInteger(N) || N < 1) {
  console.error("usage: gguf-truncate.ts MODEL.gguf N OUT.gguf");
  process.exit(2);
}
const file = openGguf(src);
const arch = String(file.metadata.get("general.architecture"));
const FLOAT_KEYS = new Set([`${arch}.rope.freq_base`, `${arch}.attention.layer_norm_rms_epsilon`]);
const parts: Uint8Array[] = [];
const put = (n: number, write: (v: DataView) => void) => {
  const b = new Uint8Array(n);
  write(new DataView(b.buffer));
  parts.push(b);
};
const u32 = (v: number) => put(4, (d) => d.setUint32(0, v, true));
const i32 = (v: number) => put(4, (d) => d.setInt32(0, v, true));
const u64 = (v: number | bigint) => put(8, (d) => d.setBigUint64(0, BigInt(v), true));
const f32 = (v: number) => put(4, (d) => d.setFloat32(0, v, true));
const str = (s: string) => {
  const e = new TextEncoder().encode(s);
  u64(e.length);
  parts.push(e);
};
const size = () => parts.reduce((a, b) => a + b.length, 0);
const pad = () => {
  const p = (32 - (size() % 32)) % 32;
  if (p) parts.push(new Uint8Array(p));
};

const tensors = [...file.tensors.values()].filter(
  (t) => !t.name.startsWith("blk.") || Number(t.name.split(".")[1]) < N,
);
u32(0x46554747);
u32(3);
u64(tensors.length);
u64(file.metadata.size);
for (const [key, value] of file.metadata) {
  str(key);
  if (key === `${arch}.block_count`) {
    u32(4);
    u32(N);
  } else if (typeof value === "string") {
    u32(8);
    str(value);
  } else if (typeof value === "boolean") {
    u32(7);
    parts.push(new Uint8Array([value ? 1 : 0]));
  } else if (typeof value === "bigint") {
    u32(10);
    u64(value);
  } else if (typeof value === "number" && FLOAT_KEYS.has(key)) {
    u32(6);
    f32(value);
  } else if (typeof value === "number") {
    u32(4);
    u32(value);
  } else if (Array.isArray(value)) {
    u32(9);
    if (typeof value[0] === "string") {
      u32(8);
      u64(value.length);
      value.forEach((s) => str(String(s)));
    } else {
      u32(5);
      u64(value.length);
      value.forEach((v) => i32(Number(v)));
    }
  }
}
let offset = 0;
for (const t of tensors) {
  str(t.name);
  u32(t.dims.length);
  t.dims.forEach((d) => u64(d));
  u32(GGML_TYPES[t.type as GgmlTypeName].id);
  u64(offset);
  offset += Math.ceil(t.byteLength / 32) * 32;
}
pad();
for (const t of tensors) {
  parts.push(file.readTensorBytes(t));
  pad();
}
const out = new Uint8Array(size());
let o = 0;
for (const p of parts) {
  out.set(p, o);
  o += p.length;
}
writeFileSync(dst, out);
console.log(`${dst}: ${N} blocks, ${tensors.length} tensors`);

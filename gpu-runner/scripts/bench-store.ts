/**
 * `npm run bench:store`: the episode-cache codec and stores. Prints and writes bench/results/store.json:
 *   the size of one SmolLM2 episode cache at budget 1,024 (1,024 entries per head in each of 30 layers ×
 *     3 KV heads, real keys and values from prefilling generated chat) in each dtype, with the mean
 *     absolute error of f16 and int8 against f32;
 *   encode and decode MB/s of each dtype (MB of the file, best of `--reps`);
 *   upload and download (with decode) MB/s of the f16 file against the filesystem store and against
 *     the S3 test server on loopback (moto; multipart above 16 MiB in 8 MiB parts, as deployed).
 *
 *   npm run bench:store -- [--model PATH] [--budget 1024] [--reps 5]
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { CreateBucketCommand } from "@aws-sdk/client-s3";
import {
  decodeKvc,
  decodeKvcBytes,
  encodeKvc,
  encodeKvcBytes,
  KVC_DTYPES,
  type KvcCache,
} from "@epicache/shared";
import { toKvc } from "../src/episodes";
import { generate, KvCache, openChatModel } from "../src/runtime";
import { requireModel } from "../src/model-registry";
import { REPO_ROOT } from "../src/paths";
import { calibrationText } from "../src/calibration";
import { FsObjectStore, S3ObjectStore, type ObjectStore } from "../src/store";
import { installS3Server, startS3Server } from "../src/testing/s3-server";

const { values } = parseArgs({
  options: {
    model: { type: "string" },
    budget: { type: "string", default: "1024" },
    reps: { type: "string", default: "5" },
  },
});
const config = {
  model: values.model ?? requireModel("chat"),
  entriesPerHead: Number(values.budget),
  reps: Number(values.reps),
  textSeed: 7,
};
const MB = 1e6;

// ── a real cache: prefill generated chat until every head holds `entriesPerHead` entries ──
const model = await openChatModel(config.model, { numerics: "fast" });
const ids = model.tokenizer
  .encode(calibrationText(Math.ceil(config.entriesPerHead * 1.2), config.textSeed))
  .slice(0, config.entriesPerHead);
if (ids.length < config.entriesPerHead)
  throw new Error(
    `the generated text has ${ids.length} tokens, fewer than ${config.entriesPerHead}`,
  );
const cache = new KvCache(model.config);
await generate(model, ids, { maxTokens: 0, cache }).next();
await model.decoder.release();
const kvc: KvcCache = toKvc(cache, model.fingerprint, config.entriesPerHead);

function best(f: () => void): number {
  let min = Infinity;
  for (let r = 0; r < config.reps; r++) {
    const t0 = performance.now();
    f();
    min = Math.min(min, (performance.now() - t0) / 1000);
  }
  return min;
}

function meanAbsError(a: KvcCache, b: KvcCache): number {
  let sum = 0,
    n = 0;
  for (const key of ["keys", "values"] as const) {
    a[key].forEach((x, i) => {
      const y = b[key][i];
      for (let k = 0; k < x.length; k++) sum += Math.abs(x[k] - y[k]);
      n += x.length;
    });
  }
  return sum / n;
}

const dtypes: Record<
  string,
  {
    bytes: number;
    encodeMBps: number;
    decodeMBps: number;
    streamDecodeMBps: number;
    meanAbsError: number;
  }
> = {};
for (const dtype of KVC_DTYPES) {
  const bytes = encodeKvcBytes(kvc, dtype);
  const encode = best(() => {
    for (const _chunk of encodeKvc(kvc, dtype)) void _chunk; // the streaming encoder, 1 MiB chunks
  });
  const decode = best(() => decodeKvcBytes(bytes));
  const chunks: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; i += 1 << 20) chunks.push(bytes.subarray(i, i + (1 << 20)));
  let streamSeconds = Infinity;
  for (let r = 0; r < config.reps; r++) {
    const t0 = performance.now();
    await decodeKvc(chunks);
    streamSeconds = Math.min(streamSeconds, (performance.now() - t0) / 1000);
  }
  dtypes[dtype] = {
    bytes: bytes.length,
    encodeMBps: bytes.length / MB / encode,
    decodeMBps: bytes.length / MB / decode,
    streamDecodeMBps: bytes.length / MB / streamSeconds,
    meanAbsError: meanAbsError(kvc, decodeKvcBytes(bytes).cache),
  };
}

// ── transfer: the f16 file up and down (down includes decoding, as a runner loads it) ──
async function transfer(store: ObjectStore): Promise<{ uploadMBps: number; downloadMBps: number }> {
  const size = dtypes.f16.bytes;
  let up = Infinity,
    down = Infinity;
  for (let r = 0; r < config.reps; r++) {
    const key = `bench/episode-${r}.kvc`;
    let t0 = performance.now();
    await store.put(key, encodeKvc(kvc, "f16"));
    up = Math.min(up, (performance.now() - t0) / 1000);
    t0 = performance.now();
    const { body, info } = await store.getStream(key);
    await decodeKvc(body, { byteLength: info.size });
    down = Math.min(down, (performance.now() - t0) / 1000);
  }
  return { uploadMBps: size / MB / up, downloadMBps: size / MB / down };
}

const dir = mkdtempSync(join(tmpdir(), "epicache-bench-store-"));
const filesystem = await transfer(new FsObjectStore(dir));
rmSync(dir, { recursive: true, force: true });
installS3Server();
const server = await startS3Server();
if (server === undefined) throw new Error("the S3 test server is not installed");
let s3: { uploadMBps: number; downloadMBps: number };
try {
  const s3store = new S3ObjectStore({ bucket: "bench", prefix: "", client: server.client });
  await s3store.client.send(new CreateBucketCommand({ Bucket: "bench" }));
  s3 = await transfer(s3store);
} finally {
  await server.stop();
}

const result = {
  measuredAt: new Date().toISOString(),
  machine: {
    cpus: cpus().length,
    cpu: cpus()[0]?.model,
    memoryBytes: totalmem(),
    node: process.version,
  },
  config: {
    ...config,
    layers: kvc.layers,
    kvHeads: kvc.kvHeads,
    headDim: kvc.headDim,
    s3Server: "moto 5.2.5 on loopback",
    multipart: { thresholdBytes: 16 << 20, partBytes: 8 << 20 },
  },
  dtypes,
  transferF16: { filesystem, s3 },
};
const f = (v: number) => v.toFixed(0);
console.log(
  `one SmolLM2 episode cache, ${config.entriesPerHead} entries per head × ${kvc.layers} layers × ${kvc.kvHeads} KV heads:`,
);
for (const [dtype, d] of Object.entries(dtypes)) {
  console.log(
    `  ${dtype.padEnd(4)} ${(d.bytes / MB).toFixed(2)} MB; encode ${f(d.encodeMBps)} MB/s, decode ${f(d.decodeMBps)} MB/s (streamed ${f(d.streamDecodeMBps)}); mean |error| ${d.meanAbsError.toExponential(2)}`,
  );
}
console.log(
  `f16 file to the filesystem store: up ${f(filesystem.uploadMBps)} MB/s, down and decode ${f(filesystem.downloadMBps)} MB/s`,
);
console.log(
  `f16 file to the S3 test server (loopback): up ${f(s3.uploadMBps)} MB/s, down and decode ${f(s3.downloadMBps)} MB/s`,
);
const out = join(REPO_ROOT, "bench", "results");
mkdirSync(out, { recursive: true });
writeFileSync(join(out, "store.json"), `${JSON.stringify(result, null, 1)}\n`);
console.log(`wrote ${join(out, "store.json")}`);

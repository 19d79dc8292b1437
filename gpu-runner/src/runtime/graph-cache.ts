/**
 * Built decoder graphs on disk, one folder per (weights fingerprint, graph version):
 * `model.onnx` plus `weights.bin` (its external data). A folder appears only once complete: it is
 * written under a temporary name and renamed.
 */
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  renameSync,
  rmSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { buildDecoderGraph, DECODER_GRAPH_VERSION, type Numerics } from "./decoder-graph";
import type { WeightSource } from "./weights";

export const WEIGHTS_FILE = "weights.bin";

/** Where the decoder graph of the weights with this fingerprint lives under `root`. */
export function decoderGraphPath(fingerprint: string, numerics: Numerics, root: string): string {
  return join(root, `${fingerprint}-g${DECODER_GRAPH_VERSION}-${numerics}`, "model.onnx");
}

/** Returns the path of the decoder graph for these weights, building it first if needed. */
export function ensureDecoderGraph(
  weights: WeightSource,
  numerics: Numerics,
  root: string,
  log: (msg: string) => void = () => {},
): string {
  const modelPath = decoderGraphPath(weights.fingerprint, numerics, root);
  const dir = dirname(modelPath);
  if (existsSync(modelPath)) return modelPath;
  const started = Date.now();
  log(`building the ONNX decoder graph in ${dir}`);
  const tmp = `${dir}.tmp-${process.pid}-${Date.now()}`;
  mkdirSync(tmp, { recursive: true });
  try {
    const { model, external } = buildDecoderGraph(weights, WEIGHTS_FILE, numerics);
    const fd = openSync(join(tmp, WEIGHTS_FILE), "w");
    try {
      for (const chunk of external) {
        const bytes = chunk.bytes();
        let done = 0;
        while (done < bytes.byteLength) done += writeSync(fd, bytes, done, bytes.byteLength - done);
      }
    } finally {
      closeSync(fd);
    }
    writeFileSync(join(tmp, "model.onnx"), model);
    try {
      renameSync(tmp, dir);
    } catch (e) {
      // Another process finished the same graph first: theirs is as good as ours.
      if (!existsSync(modelPath)) throw e;
      rmSync(tmp, { recursive: true, force: true });
    }
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  log(`built the decoder graph in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return modelPath;
}

/**
 * The safetensors files of a Hugging Face checkpoint directory, as one table of tensors.
 *
 * With `model.safetensors.index.json` (sharded checkpoints) its `weight_map` names the file of every
 * tensor; without it, every `*.safetensors` file in the directory is read and a name may appear in
 * only one of them. All headers are checked when the checkpoint opens; tensors are read one at a time.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { EpicacheError } from "@epicache/shared";
import { openSafetensors, type SafetensorsFile, type SafetensorsTensorInfo } from "./reader";

export const INDEX_FILE = "model.safetensors.index.json";

export interface CheckpointTensor {
  file: SafetensorsFile;
  info: SafetensorsTensorInfo;
}

export interface SafetensorsCheckpoint {
  /** The safetensors files, sorted by name. */
  paths: string[];
  tensors: Map<string, CheckpointTensor>;
  /** A tensor's values as f32; `model_invalid` when the checkpoint lacks it. */
  read(name: string): Float32Array;
  close(): void;
}

/** The shard file names of an index json, by tensor name. */
function readIndex(dir: string): Map<string, string> {
  const path = join(dir, INDEX_FILE);
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new EpicacheError("model_invalid", `${path} is not valid JSON: ${(e as Error).message}`);
  }
  const map =
    typeof json === "object" && json !== null
      ? (json as { weight_map?: unknown }).weight_map
      : undefined;
  if (typeof map !== "object" || map === null || Array.isArray(map))
    throw new EpicacheError("model_invalid", `${path} has no weight_map object`);
  const out = new Map<string, string>();
  for (const [name, file] of Object.entries(map)) {
    // A bare file name inside the checkpoint: nothing that could point outside it.
    if (typeof file !== "string" || !/^[\w.-]+\.safetensors$/.test(file) || file.startsWith(".")) {
      throw new EpicacheError(
        "model_invalid",
        `${path}: tensor ${name} maps to ${JSON.stringify(file)}, not a safetensors file name`,
      );
    }
    out.set(name, file);
  }
  return out;
}

function listSafetensors(dir: string): string[] {
  try {
    return readdirSync(dir)
      .filter((f) => f.endsWith(".safetensors"))
      .sort();
  } catch (e) {
    throw new EpicacheError(
      "model_not_found",
      `cannot list checkpoint directory ${dir}: ${(e as Error).message}`,
    );
  }
}

/** Opens the safetensors files of a checkpoint directory. Call `close()` when done. */
export function openSafetensorsCheckpoint(dir: string): SafetensorsCheckpoint {
  const indexed = existsSync(join(dir, INDEX_FILE));
  const weightMap = indexed ? readIndex(dir) : undefined;
  const names = weightMap ? [...new Set(weightMap.values())].sort() : listSafetensors(dir);
  if (names.length === 0)
    throw new EpicacheError("model_not_found", `${dir} holds no *.safetensors file`);
  const files = new Map<string, SafetensorsFile>();
  const close = () => {
    for (const f of files.values()) f.close();
  };
  try {
    for (const name of names) files.set(name, openSafetensors(join(dir, name)));
    const tensors = new Map<string, CheckpointTensor>();
    if (weightMap) {
      for (const [tensor, name] of weightMap) {
        const file = files.get(name) as SafetensorsFile; // every mapped name was opened above
        const info = file.tensors.get(tensor);
        if (!info)
          throw new EpicacheError(
            "model_invalid",
            `${INDEX_FILE} puts ${tensor} in ${name}, which lacks it`,
          );
        tensors.set(tensor, { file, info });
      }
    } else {
      for (const [name, file] of files) {
        for (const info of file.tensors.values()) {
          if (tensors.has(info.name))
            throw new EpicacheError(
              "model_invalid",
              `${dir}: tensor ${info.name} is in more than one file (${name} too)`,
            );
          tensors.set(info.name, { file, info });
        }
      }
    }
    return {
      paths: names.map((n) => join(dir, n)),
      tensors,
      read(name) {
        const t = tensors.get(name);
        if (!t)
          throw new EpicacheError("model_invalid", `${dir}: the checkpoint lacks tensor ${name}`);
        return t.file.readTensor(t.info);
      },
      close,
    };
  } catch (e) {
    close();
    throw e;
  }
}

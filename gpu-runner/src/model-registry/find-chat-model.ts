/**
 * Naming a chat model by what it is, not where it is: manifests and evaluation configs record a
 * model's id and fingerprint, and a reader on any machine (or under any `EPICACHE_HOME`) finds the
 * file in its own model cache, or checks the one it was given.
 */
import { existsSync, statSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { EpicacheError } from "@epicache/shared";
import { modelFingerprint } from "../runtime/load";
import { modelsDir } from "../paths";
import { modelPath } from "./pull";
import { MODELS, type ModelSpec } from "./registry";

/** How a manifest names the chat model its caches were built with. */
export interface ModelRef {
  /** The registry id (`smollm2-135m-instruct-q4_1`) of a registered model, else its file or directory name. */
  id: string;
  /** The first 16 hex digits of the SHA-256 of the weights (`ChatModel.fingerprint`). */
  fingerprint: string;
}

/**
 * The fingerprint of a registered chat model, from the pinned SHA-256 of its main file (no hashing).
 * Only a GGUF file's fingerprint is the SHA-256 of the file; a checkpoint directory's covers several.
 */
export function pinnedFingerprint(spec: ModelSpec): string | undefined {
  if (!spec.main.endsWith(".gguf")) return undefined;
  const main = spec.archives.flatMap((a) => a.members).find((m) => m.as === spec.main);
  return main?.sha256.slice(0, 16);
}

function registeredChat(fingerprint: string): ModelSpec | undefined {
  return MODELS.find((s) => s.kind === "chat" && pinnedFingerprint(s) === fingerprint);
}

/** The name a manifest records for `model`: its registry id when its weights are a registered model's. */
export function chatModelRef(model: { path: string; fingerprint: string }): ModelRef {
  return {
    id: registeredChat(model.fingerprint)?.id ?? basename(resolve(model.path)),
    fingerprint: model.fingerprint,
  };
}

export interface FindChatModelOptions {
  /** A file or checkpoint directory to use instead of searching (`--model`, `EPICACHE_CHAT_MODEL`). */
  model?: string;
  /** The model cache (default `$EPICACHE_HOME/models`). */
  root?: string;
}

/**
 * The local path of the chat model `ref` names, its fingerprint checked (opening it afterwards does
 * not hash it again).
 *
 * With `opts.model`, that path, or `model_mismatch` when it holds other weights. Otherwise the model
 * cache: a registered model where `models pull` puts it, found by its pinned SHA-256; any other
 * model placed in the cache under its id (`<root>/<id>`, a file or a checkpoint directory). When the
 * cache does not hold it, `model_not_found` naming the model and how to get it.
 *
 * @example
 * findChatModel({ id: "smollm2-135m-instruct-q4_1", fingerprint: "b179c9523d0e6a0f" });
 * // → "$EPICACHE_HOME/models/smollm2-135m-instruct-q4_1/SmolLM2-135M-Instruct.Q4_1.gguf"
 */
export function findChatModel(ref: ModelRef, opts: FindChatModelOptions = {}): string {
  const wanted = `${ref.id} (fingerprint ${ref.fingerprint})`;
  if (opts.model !== undefined) {
    const got = modelFingerprint(opts.model);
    if (got !== ref.fingerprint) {
      throw new EpicacheError(
        "model_mismatch",
        `${opts.model} has fingerprint ${got}, but ${wanted} is needed: pass that model, or leave out --model and EPICACHE_CHAT_MODEL to find it in the model cache`,
      );
    }
    return opts.model;
  }
  const root = opts.root ?? modelsDir();
  const spec = registeredChat(ref.fingerprint);
  if (spec !== undefined) {
    const path = modelPath(spec, root);
    const pull = `run \`npx epicache models pull ${spec.id}\`, or pass the file with --model PATH`;
    if (!existsSync(path))
      throw new EpicacheError(
        "model_not_found",
        `model ${wanted} is not in the model cache ${root}: ${pull}`,
      );
    // The size first: a half-copied file is refused without reading it.
    const size = spec.archives.flatMap((a) => a.members).find((m) => m.as === spec.main)?.bytes;
    if (statSync(path).size !== size || modelFingerprint(path) !== ref.fingerprint) {
      throw new EpicacheError(
        "model_not_found",
        `${path} is not the pinned ${spec.id} (its size or SHA-256 differs): ${pull}`,
      );
    }
    return path;
  }
  const put = `put it there as ${join(root, ref.id)}, or pass it with --model PATH`;
  // The id comes from a stored manifest: only a plain name is looked up.
  if (ref.id !== basename(ref.id) || ref.id === "." || ref.id === ".." || ref.id === "") {
    throw new EpicacheError(
      "model_not_found",
      `model ${wanted} is not registered and ${JSON.stringify(ref.id)} cannot name a file in the model cache: pass it with --model PATH`,
    );
  }
  const path = join(root, ref.id);
  if (!existsSync(path))
    throw new EpicacheError(
      "model_not_found",
      `model ${wanted} is not in the model cache ${root}: ${put}`,
    );
  const got = modelFingerprint(path);
  if (got !== ref.fingerprint)
    throw new EpicacheError(
      "model_not_found",
      `${path} has fingerprint ${got}, not ${ref.fingerprint}: model ${wanted} is not in the model cache; ${put}`,
    );
  return path;
}

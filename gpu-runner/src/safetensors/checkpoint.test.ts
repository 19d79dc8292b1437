import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { writeSafetensors, writeTinyHfCheckpoint } from "../testing";
import { INDEX_FILE, openSafetensorsCheckpoint } from "./checkpoint";

const root = mkdtempSync(join(tmpdir(), "epicache-ckpt-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const tensor = (name: string, v: number) => ({
  name,
  dtype: "F32" as const,
  shape: [2],
  data: Float32Array.of(v, -v),
});

function dirWith(name: string, files: Record<string, Uint8Array | string>): string {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  for (const [file, bytes] of Object.entries(files)) writeFileSync(join(dir, file), bytes);
  return dir;
}

describe("safetensors checkpoints", () => {
  it("reads a sharded checkpoint through its index like the single-file one", () => {
    const one = writeTinyHfCheckpoint(join(root, "one"), { dtype: "F16" });
    const three = writeTinyHfCheckpoint(join(root, "three"), { dtype: "F16", shards: 3 });
    const a = openSafetensorsCheckpoint(one.dir);
    const b = openSafetensorsCheckpoint(three.dir);
    try {
      expect(b.paths.map((p) => p.slice(three.dir.length + 1))).toEqual([
        "model-00001-of-00003.safetensors",
        "model-00002-of-00003.safetensors",
        "model-00003-of-00003.safetensors",
      ]);
      expect([...b.tensors.keys()].sort()).toEqual([...a.tensors.keys()].sort());
      for (const [name, values] of one.tensors) {
        expect(b.read(name)).toEqual(values);
        expect(a.read(name)).toEqual(values);
      }
      expect(() => a.read("nope")).toThrow(expect.objectContaining({ code: "model_invalid" }));
    } finally {
      a.close();
      b.close();
    }
  });

  it("joins unindexed files but refuses a tensor in two of them", () => {
    const ok = dirWith("unindexed", {
      "a.safetensors": writeSafetensors([tensor("x", 1)]),
      "b.safetensors": writeSafetensors([tensor("y", 2)]),
    });
    const ckpt = openSafetensorsCheckpoint(ok);
    expect(Array.from(ckpt.read("y"))).toEqual([2, -2]);
    ckpt.close();
    const dup = dirWith("duplicate", {
      "a.safetensors": writeSafetensors([tensor("x", 1)]),
      "b.safetensors": writeSafetensors([tensor("x", 2)]),
    });
    expect(() => openSafetensorsCheckpoint(dup)).toThrow(
      expect.objectContaining({
        code: "model_invalid",
        message: expect.stringMatching(/more than one file/),
      }),
    );
  });

  it("rejects an index that names missing tensors, missing shards or paths outside the checkpoint", () => {
    const shard = writeSafetensors([tensor("x", 1)]);
    const index = (map: Record<string, string>) =>
      JSON.stringify({ metadata: {}, weight_map: map });
    const cases: Array<[string, Record<string, Uint8Array | string>, string, RegExp]> = [
      [
        "lacking",
        { "s.safetensors": shard, [INDEX_FILE]: index({ x: "s.safetensors", y: "s.safetensors" }) },
        "model_invalid",
        /lacks it/,
      ],
      [
        "escaping",
        { "s.safetensors": shard, [INDEX_FILE]: index({ x: "../s.safetensors" }) },
        "model_invalid",
        /not a safetensors file name/,
      ],
      [
        "missing shard",
        { [INDEX_FILE]: index({ x: "gone.safetensors" }) },
        "model_not_found",
        /gone\.safetensors/,
      ],
      ["bad json", { [INDEX_FILE]: "{" }, "model_invalid", /not valid JSON/],
      ["no weight map", { [INDEX_FILE]: "{}" }, "model_invalid", /weight_map/],
    ];
    for (const [name, files, code, message] of cases) {
      expect(() => openSafetensorsCheckpoint(dirWith(name, files)), name).toThrow(
        expect.objectContaining({ code, message: expect.stringMatching(message) }),
      );
    }
    expect(() => openSafetensorsCheckpoint(dirWith("empty", {}))).toThrow(
      expect.objectContaining({ code: "model_not_found" }),
    );
  });

  it("reports a truncated shard when the checkpoint opens", () => {
    const bytes = writeSafetensors([tensor("x", 1), tensor("y", 2)]);
    const dir = dirWith("truncated", { "model.safetensors": bytes.subarray(0, bytes.length - 3) });
    expect(() => openSafetensorsCheckpoint(dir)).toThrow(
      expect.objectContaining({
        code: "model_invalid",
        message: expect.stringMatching(/truncated/),
      }),
    );
  });
});

/**
 * `epicache build --sessions` then `epicache update` as a user runs them: the second session's end,
 * then the rest of the file as an incremental update, then nothing new; a speaker the header does not
 * name makes a full build. A tiny generated chat model (--model) and the pulled embedder.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { findModel } from "../model-registry";
import { REPO_ROOT } from "../paths";
import { NEEDS_PULL, pulledModel, runCli, tinyGguf } from "../testing";

const embedderPath = pulledModel("embedder");

describe.skipIf(!embedderPath)(`build --sessions, then update ${NEEDS_PULL}`, () => {
  const dir = mkdtempSync(join(tmpdir(), "epicache-update-cli-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("continues the active version with the file's later messages, and starts over for a new speaker", async () => {
    const home = join(dir, "home");
    mkdirSync(join(home, "models"), { recursive: true });
    symlinkSync(
      dirname(embedderPath as string),
      join(home, "models", (findModel("embedder") as { id: string }).id),
    );
    const model = join(dir, "tiny.gguf");
    writeFileSync(model, tinyGguf({ architecture: "llama", numLayers: 2, seed: 3 }).bytes);
    const file = join(dir, "chat.jsonl");
    writeFileSync(
      file,
      readFileSync(join(REPO_ROOT, "test", "fixtures", "conversation-excerpt.jsonl"), "utf8"),
    );
    const store = join(dir, "store");
    const common = [
      "--conversation",
      file,
      "--id",
      "maya-tom",
      "--out",
      store,
      "--model",
      model,
      "--numerics",
      "exact",
      "--json",
    ];
    const run = async (...args: string[]) => {
      const r = await runCli(home, args, 300_000);
      expect(r.status, r.stderr).toBe(0);
      return JSON.parse(r.stdout) as Record<string, unknown>;
    };

    const built = await run(
      "build",
      ...common,
      "--sessions",
      "1-2",
      "--episodes",
      "2",
      "--budget",
      "32",
      "--block",
      "32",
      "--alloc",
      "uniform",
      "--n-medoid",
      "1",
    );
    expect(built.sessions).toEqual({ kept: 2, total: 2 });
    const updated = await run("update", ...common);
    expect(updated).toMatchObject({
      kind: "incremental",
      baseVersion: built.version,
      newMessages: 10,
    });
    expect(updated.contextTokens as number).toBeGreaterThan(built.contextTokens as number);
    expect(await run("update", ...common)).toMatchObject({
      kind: "none",
      version: updated.version,
      newMessages: 0,
    });

    writeFileSync(
      file,
      `${readFileSync(file, "utf8").trim()}\n${JSON.stringify({ id: "m4-1", speaker: "Cleo", text: "Hi both!", session: 4 })}\n`,
    );
    expect(await run("update", ...common)).toMatchObject({
      kind: "full",
      reason: expect.stringContaining("new speaker, Cleo"),
    });
  }, 900_000);
});

/**
 * A store moves between machines: built under one EPICACHE_HOME, asked under another whose model
 * cache holds the same model (found by fingerprint), refused under one that does not hold it, and
 * refused with a `--model` of other weights. Runs the real command on SmolLM2, as a user does.
 */
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { findModel, modelPath, pinnedFingerprint, type ModelSpec } from "../model-registry";
import { REPO_ROOT } from "../paths";
import { NEEDS_PULL, pulledModel, runCli, tinyGguf, type CliRun } from "../testing";

const chatPath = pulledModel("chat");
const embedderPath = pulledModel("embedder");

function spec(name: string): ModelSpec {
  const found = findModel(name);
  if (!found) throw new Error(`the registry has no ${name} model`);
  return found;
}
const chat = spec("chat");
const embedder = spec("embedder");

/** Runs the command with `home` as EPICACHE_HOME and no model from the environment. */
function cli(home: string, ...args: string[]): Promise<CliRun> {
  return runCli(home, args, 240_000);
}

describe.skipIf(!chatPath || !embedderPath)(
  `a store built under one EPICACHE_HOME, asked under another ${NEEDS_PULL}`,
  () => {
    const dir = mkdtempSync(join(tmpdir(), "epicache-ask-test-"));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    const [a, b, c] = [join(dir, "a"), join(dir, "b"), join(dir, "c")];
    /** Makes `h` a home whose model cache links the pulled embedder, and the pulled chat model when `withChat`. */
    function home(h: string, withChat: boolean): void {
      mkdirSync(join(h, "models"), { recursive: true });
      symlinkSync(dirname(embedderPath as string), join(h, "models", embedder.id));
      if (withChat) {
        mkdirSync(join(h, "models", chat.id));
        symlinkSync(chatPath as string, modelPath(chat, join(h, "models")));
      }
    }
    const store = join(a, "store");
    const question = [
      "--store",
      store,
      "--id",
      "maya-tom",
      "--question",
      "Who teaches the pottery class?",
      "--max-tokens",
      "8",
    ];
    let built: Promise<CliRun>;
    beforeAll(() => {
      home(a, true);
      home(b, true);
      home(c, false);
      // The committed chat, cut to its first 12 messages: two episodes, a few seconds of prefill.
      const conversation = join(dir, "chat.jsonl");
      const fixture = readFileSync(
        join(REPO_ROOT, "test", "fixtures", "conversation-excerpt.jsonl"),
        "utf8",
      );
      writeFileSync(conversation, `${fixture.trim().split("\n").slice(0, 12).join("\n")}\n`);
      built = cli(
        a,
        "build",
        "--conversation",
        conversation,
        "--id",
        "maya-tom",
        "--out",
        store,
        "--episodes",
        "2",
        "--budget",
        "64",
        "--block",
        "64",
        "--alloc",
        "uniform",
        "--numerics",
        "fast",
        "--json",
      );
    });

    it("names the model in the manifest by id and fingerprint, not by the builder's path", async () => {
      const r = await built;
      expect(r.status, r.stderr).toBe(0);
      const versions = join(store, "tenants", "local", "conversations", "maya-tom", "versions");
      const [version] = readdirSync(versions);
      const text = readFileSync(join(versions, version, "manifest.json"), "utf8");
      const manifest = JSON.parse(text) as { format: string; model: Record<string, unknown> };
      expect(manifest.format).toBe("epicache-episodes/4");
      expect(manifest.model).toMatchObject({ id: chat.id, fingerprint: pinnedFingerprint(chat) });
      expect(manifest.model).not.toHaveProperty("path");
      expect(text).not.toContain(a);
    }, 300_000);

    it("answers under another home whose model cache holds the model", async () => {
      expect((await built).status).toBe(0);
      const r = await cli(b, "ask", ...question, "--json");
      expect(r.status, r.stderr).toBe(0);
      const result = JSON.parse(r.stdout) as {
        episode: number;
        rule: unknown;
        scores: number[];
        answer: string;
      };
      // The default rule: the episode of the window best matching the question's words.
      expect(result.rule).toEqual({ rule: "lexical" });
      expect(result.scores).toHaveLength(2);
      expect(result.scores[result.episode]).toBe(Math.max(...result.scores));
      expect(typeof result.answer).toBe("string");
    }, 300_000);

    it("under a home without the model, says which model and how to get it", async () => {
      expect((await built).status).toBe(0);
      const r = await cli(c, "ask", ...question);
      expect(r.status).toBe(1);
      expect(r.stderr).toContain("[model_not_found]");
      expect(r.stderr).toContain(chat.id);
      expect(r.stderr).toContain(`npx epicache models pull ${chat.id}`);
    }, 120_000);

    it("refuses a --model of other weights", async () => {
      expect((await built).status).toBe(0);
      const other = join(dir, "other.gguf");
      writeFileSync(other, tinyGguf({ architecture: "llama", numLayers: 2, seed: 1 }).bytes);
      const r = await cli(b, "ask", ...question, "--model", other);
      expect(r.status).toBe(1);
      expect(r.stderr).toContain("[model_mismatch]");
      expect(r.stderr).toContain(chat.id);
      // The right file given explicitly is used, wherever it is (home c's cache has no chat model).
      // Built graphs are keyed by fingerprint: c borrows b's rather than building the same one again.
      symlinkSync(join(b, "graphs"), join(c, "graphs"));
      const given = await cli(c, "ask", ...question, "--model", chatPath as string, "--json");
      expect(given.status, given.stderr).toBe(0);
    }, 300_000);
  },
);

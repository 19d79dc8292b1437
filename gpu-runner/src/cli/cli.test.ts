/**
 * The `epicache` command as a user runs it (spawned through bin/epicache.mjs): every command's
 * `--help`, and every closed-set option refused by name. The refusals run with an empty model cache,
 * so an option checked only after the model is looked up would fail with `model_not_found` instead.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { runCli, type CliRun } from "../testing";

const emptyHome = mkdtempSync(join(tmpdir(), "epicache-cli-test-"));
afterAll(() => rmSync(emptyHome, { recursive: true, force: true }));

/** Runs the command with no models (an empty EPICACHE_HOME) and no model from the environment. */
function cli(...args: string[]): Promise<CliRun> {
  return runCli(emptyHome, args);
}

/** A command's own help put back as the global usage lists it (two spaces in, continuation lines 14 less). */
function asListed(help: string): string {
  return help.replace(/^usage: epicache /, "  ").replace(/\n {14}/g, "\n");
}

describe.concurrent("epicache --help", () => {
  const global = cli("--help");

  it("lists every command's usage and exits 0", async () => {
    const r = await global;
    expect(r.status).toBe(0);
    expect(r.stderr).toBe("");
    expect(r.stdout).toMatch(/^usage: epicache <command> \[options\]/);
  });

  const commands = ["models", "generate", "build", "ask", "calibrate", "eval", "serve", "demo"];
  for (const command of commands) {
    it(`${command} --help prints that command's usage, as the global usage lists it, and exits 0`, async () => {
      const [r, all] = await Promise.all([cli(command, "--help"), global]);
      expect(r.status).toBe(0);
      expect(r.stderr).toBe("");
      expect(r.stdout).toMatch(new RegExp(`^usage: epicache ${command}\\b`));
      expect(all.stdout).toContain(asListed(r.stdout));
      // Only this command's usage: no other command's first line.
      for (const other of commands.filter((c) => c !== command))
        expect(r.stdout).not.toMatch(new RegExp(`^ *${other}\\b`, "m"));
    });
  }

  for (const sub of ["pull", "path", "list"]) {
    it(`models ${sub} -h prints the models usage and exits 0`, async () => {
      const r = await cli("models", sub, "-h");
      expect(r.status).toBe(0);
      expect(r.stdout).toMatch(/^usage: epicache models pull/);
      expect(r.stdout).toContain(`models ${sub}`);
    });
  }
});

describe.concurrent(
  "closed-set options refuse an unknown value, naming the allowed ones, before any model is loaded",
  () => {
    const NUMERICS = ["ggml", "exact", "fast"];
    const cases: Array<{ args: string[]; allowed: string[] }> = [
      { args: ["generate", "--prompt", "x", "--numerics", "turbo"], allowed: NUMERICS },
      { args: ["calibrate", "--numerics", "turbo"], allowed: NUMERICS },
      {
        args: ["eval", "--data", "x.json", "--out", emptyHome, "--numerics", "turbo"],
        allowed: NUMERICS,
      },
      {
        args: ["eval", "--data", "x.json", "--out", emptyHome, "--format", "jsonl"],
        allowed: ["locomo", "realtalk"],
      },
      {
        args: ["eval", "--data", "x.json", "--out", emptyHome, "--methods", "full,turbo"],
        allowed: [
          "full",
          "epicache",
          "epicache-noalloc",
          "epicache-original",
          "snapkv",
          "infinipot",
          "kvzip",
          "keydiff",
          "streamingllm",
          "recent",
        ],
      },
      // build checks its options before it reads the conversation (this one does not exist).
      {
        args: ["build", "--conversation", "missing.json", "--numerics", "turbo"],
        allowed: NUMERICS,
      },
      {
        args: ["build", "--conversation", "missing.json", "--format", "csv"],
        allowed: ["locomo", "realtalk", "jsonl"],
      },
      {
        args: ["build", "--conversation", "missing.json", "--method", "turbo"],
        allowed: ["full", "epicache", "snapkv", "infinipot", "kvzip", "keydiff", "streamingllm"],
      },
      {
        args: ["build", "--conversation", "missing.json", "--alloc", "maybe"],
        allowed: ["uniform", "official", "output"],
      },
      {
        args: ["build", "--conversation", "missing.json", "--heads", "mixed"],
        allowed: ["headwise", "uniform"],
      },
      {
        args: ["build", "--conversation", "missing.json", "--dtype", "f64"],
        allowed: ["f32", "f16", "int8"],
      },
      {
        args: ["build", "--conversation", "missing.json", "--positions", "shifted"],
        allowed: ["compact", "original"],
      },
      {
        args: ["build", "--conversation", "missing.json", "--routing", "nearest"],
        allowed: ["centroid", "window", "vote", "lexical"],
      },
      {
        args: ["eval", "--data", "x.json", "--out", emptyHome, "--history", "half"],
        allowed: ["whole", "cut"],
      },
      {
        args: ["eval", "--data", "x.json", "--out", emptyHome, "--positions", "shifted"],
        allowed: ["compact", "original"],
      },
      {
        args: ["eval", "--data", "x.json", "--out", emptyHome, "--routing", "nearest"],
        allowed: ["centroid", "window", "vote", "lexical"],
      },
    ];
    for (const { args, allowed } of cases) {
      const option = args[args.length - 2];
      it(`${args[0]} ${option}`, async () => {
        const r = await cli(...args);
        expect(r.status).not.toBe(0);
        expect(r.stdout).toBe("");
        expect(r.stderr).toContain("[invalid_argument]");
        expect(r.stderr).toContain(
          `${option} "${args[args.length - 1].split(",").at(-1)}" is not one of ${allowed.join(", ")}`,
        );
      });
    }

    it("build refuses --vote-k without --routing vote, and a k that is not a positive integer", async () => {
      const [alone, zero] = await Promise.all([
        cli("build", "--conversation", "missing.json", "--vote-k", "5"),
        cli("build", "--conversation", "missing.json", "--routing", "vote", "--vote-k", "0"),
      ]);
      expect(alone.stderr).toContain("--vote-k goes with --routing vote [invalid_argument]");
      expect(zero.stderr).toContain('--vote-k "0" is not valid [invalid_argument]');
    });

    it("eval refuses --threads that is not a positive integer, before opening any model", async () => {
      const r = await cli("eval", "--data", "x.json", "--out", emptyHome, "--threads", "0");
      expect(r.status).not.toBe(0);
      expect(r.stderr).toContain('--threads "0" is not valid [invalid_argument]');
    });

    it("demo refuses any option", async () => {
      const r = await cli("demo", "--numerics", "fast");
      expect(r.status).not.toBe(0);
      expect(r.stderr).toContain("[invalid_argument]");
    });
  },
);

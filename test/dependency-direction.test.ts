/**
 * The dependency direction of the monorepo (.dependency-cruiser.cjs) holds on the tree, and its rules
 * do fire: a throw-away tree in the OS temp folder that mirrors shared/src, gpu-runner/src and edge/src
 * breaks each rule once and must be reported rule by rule. The client (client/), the console
 * (console/) and the root tools (tools/) are cruised too.
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  cruise,
  type ICruiseOptions,
  type ICruiseResult,
  type IViolation,
} from "dependency-cruiser";
import extractDepcruiseOptions from "dependency-cruiser/config-utl/extract-depcruise-options";
import extractTSConfig from "dependency-cruiser/config-utl/extract-ts-config";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const CONFIG = join(ROOT, ".dependency-cruiser.cjs");
const TSCONFIG = join(ROOT, "tsconfig.json");

/** Cruises `paths` (relative to `baseDir`) with the repo's rule set, as `npm run deps:check` does. */
async function cruiseWithRepoRules(baseDir: string, paths: string[]): Promise<ICruiseResult> {
  const options: ICruiseOptions = await extractDepcruiseOptions(CONFIG);
  options.baseDir = baseDir;
  options.tsConfig = { fileName: TSCONFIG };
  options.outputType = "json";
  const { output } = await cruise(paths, options, {}, { tsConfig: extractTSConfig(TSCONFIG) });
  return (typeof output === "string" ? JSON.parse(output) : output) as ICruiseResult;
}

const describeViolation = (v: IViolation) => `${v.rule.name}: ${v.from} → ${v.to}`;

describe("dependency direction", () => {
  it("the tree has no violations", { timeout: 20_000 }, async () => {
    const result = await cruiseWithRepoRules(ROOT, [
      "shared/src",
      "gpu-runner/src",
      "edge/src",
      "client/src",
      "client/scripts",
      "client/examples",
      "console/src",
      "console/build.mjs",
      "tools",
      "test",
    ]);
    expect(result.summary.violations.map(describeViolation)).toEqual([]);
    expect(result.summary.error).toBe(0);

    // `@epicache/shared` is imported by name; it must resolve to shared/src (not stay in
    // node_modules), otherwise the shared/ rules would never see it.
    const edge = result.modules.find((m) => m.source === "edge/src/app.ts");
    expect(edge, "edge/src/app.ts is cruised").toBeDefined();
    const toShared = edge!.dependencies.find((d) => d.module === "@epicache/shared");
    expect(toShared?.resolved).toBe("shared/src/index.ts");
    // The client's subpath imports resolve into shared/src as well.
    const client = result.modules.find((m) => m.source === "client/src/client.ts");
    expect(
      client?.dependencies.find((d) => d.module === "@epicache/shared/webhooks")?.resolved,
    ).toBe("shared/src/webhooks/index.ts");
    // The console's: the client's source, and shared's loaders.
    const console_ = result.modules.find((m) => m.source === "console/src/conversation-file.ts");
    expect(
      console_?.dependencies.find((d) => d.module === "@epicache/shared/loaders")?.resolved,
    ).toBe("shared/src/conversation/loaders.ts");
    const page = result.modules.find((m) => m.source === "console/src/console.ts");
    expect(page?.dependencies.find((d) => d.module === "@epicache/client")?.resolved).toBe(
      "client/src/index.ts",
    );
  });

  describe("the rules fire on a tree that breaks them", () => {
    let fixture = "";

    beforeAll(() => {
      fixture = mkdtempSync(join(tmpdir(), "epicache-depcruise-"));
      const files: Record<string, string> = {
        // shared/ reaches for Node, the Workers runtime and the edge.
        "shared/src/index.ts": `import { readFileSync } from "node:fs";\nexport const read = readFileSync;\n`,
        "shared/src/socket.ts": `import { connect } from "cloudflare:sockets";\nexport const c = connect;\n`,
        "shared/src/up.ts": `import { app } from "../../edge/src/index";\nexport const a = app;\n`,
        // The runner may use onnxruntime-node, but not the edge; a.ts ↔ b.ts is a cycle.
        "gpu-runner/src/index.ts": `import * as ort from "onnxruntime-node";\nexport const runner = ort;\n`,
        "gpu-runner/src/to-edge.ts": `import { app } from "../../edge/src/index";\nexport const a = app;\n`,
        "gpu-runner/src/a.ts": `import { b } from "./b";\nexport const a = () => b();\n`,
        "gpu-runner/src/b.ts": `import { a } from "./a";\nexport const b = (): unknown => a;\n`,
        "gpu-runner/src/missing.ts": `import { gone } from "./does-not-exist";\nexport const g = gone;\n`,
        // The edge imports the runner and onnxruntime-node; `cloudflare:workers` is fine here.
        "edge/src/index.ts":
          `import { env } from "cloudflare:workers";\nimport { runner } from "../../gpu-runner/src/index";\n` +
          `export const app = { env, runner };\n`,
        "edge/src/model.ts": `import * as ort from "onnxruntime-node";\nexport const m = ort;\n`,
        "edge/src/hash.ts": `import { createHash } from "node:crypto";\nexport const h = createHash;\n`,
        // The client reaches for the edge, Node and the whole of shared/; its own test may use Node,
        // and shared's web-only entry points are fine.
        "client/src/index.ts": `import { app } from "../../edge/src/index";\nexport const a = app;\n`,
        "client/src/node.ts": `import { readFileSync } from "node:fs";\nexport const read = readFileSync;\n`,
        "client/src/heavy.ts": `import { read } from "../../shared/src/index";\nexport const r = read;\n`,
        "client/src/light.ts": `import { signWebhook } from "../../shared/src/webhooks/index";\nimport { ERROR_CODES } from "../../shared/src/errors";\nexport const s = [signWebhook, ERROR_CODES];\n`,
        "client/src/light.test.ts": `import { readFileSync } from "node:fs";\nexport const read = readFileSync;\n`,
        "shared/src/webhooks/index.ts": `export const signWebhook = 1;\n`,
        "shared/src/errors.ts": `export const ERROR_CODES = 1;\n`,
        // The console reaches for the runner, Node and the whole of shared/; shared's loaders and
        // Node in its tests are fine.
        "console/src/index.ts": `import { runner } from "../../gpu-runner/src/index";\nexport const r = runner;\n`,
        "console/src/node.ts": `import { readFileSync } from "node:fs";\nexport const read = readFileSync;\n`,
        "console/src/heavy.ts": `import { read } from "../../shared/src/index";\nexport const r = read;\n`,
        "console/src/light.ts": `import { load } from "../../shared/src/conversation/loaders";\nimport { signWebhook } from "../../shared/src/webhooks/index";\nexport const l = [load, signWebhook];\n`,
        "console/src/light.test.ts": `import { readFileSync } from "node:fs";\nexport const read = readFileSync;\n`,
        "shared/src/conversation/loaders.ts": `export const load = 1;\n`,
        // The runner and the edge reach up into tools/; tools/ imports the edge's code. Its use of the
        // runner is fine.
        "gpu-runner/src/to-tools.ts": `import { startStack } from "../../tools/stack/index";\nexport const s = startStack;\n`,
        "edge/src/to-tools.ts": `import { startStack } from "../../tools/stack/index";\nexport const s = startStack;\n`,
        "tools/stack/index.ts": `import { runner } from "../../gpu-runner/src/index";\nexport const startStack = runner;\n`,
        "tools/into-edge.ts": `import { app } from "../edge/src/index";\nexport const a = app;\n`,
      };
      for (const [path, text] of Object.entries(files)) {
        mkdirSync(dirname(join(fixture, path)), { recursive: true });
        writeFileSync(join(fixture, path), text);
      }
      // Real packages resolve as in the repo (onnxruntime-node lands in node_modules/…).
      symlinkSync(join(ROOT, "node_modules"), join(fixture, "node_modules"), "dir");
    });

    afterAll(() => {
      if (fixture) rmSync(fixture, { recursive: true, force: true });
    });

    it("reports each broken rule", { timeout: 20_000 }, async () => {
      const result = await cruiseWithRepoRules(fixture, [
        "shared/src",
        "gpu-runner/src",
        "edge/src",
        "client/src",
        "console/src",
        "tools",
      ]);
      const violations = result.summary.violations;
      const found = (rule: string, from: string, to: RegExp) =>
        violations.some((v) => v.rule.name === rule && v.from === from && to.test(v.to));
      const listing = violations.map(describeViolation).join("\n");

      const expected: [rule: string, from: string, to: RegExp][] = [
        ["shared-not-to-node-builtins", "shared/src/index.ts", /^(node:)?fs$/],
        ["shared-not-to-cloudflare", "shared/src/socket.ts", /^cloudflare:sockets$/],
        ["cloudflare-only-in-edge", "shared/src/socket.ts", /^cloudflare:sockets$/],
        ["shared-not-to-packages", "shared/src/up.ts", /^edge\/src\/index\.ts$/],
        ["edge-not-to-gpu-runner", "edge/src/index.ts", /^gpu-runner\/src\/index\.ts$/],
        ["gpu-runner-not-to-edge", "gpu-runner/src/to-edge.ts", /^edge\/src\/index\.ts$/],
        ["onnxruntime-only-in-gpu-runner", "edge/src/model.ts", /node_modules\/onnxruntime-node\//],
        ["edge-not-to-node-builtins", "edge/src/hash.ts", /^(node:)?crypto$/],
        ["no-circular", "gpu-runner/src/a.ts", /^gpu-runner\/src\/b\.ts$/],
        ["not-to-unresolvable", "gpu-runner/src/missing.ts", /does-not-exist/],
        ["client-not-to-services", "client/src/index.ts", /^edge\/src\/index\.ts$/],
        ["client-not-to-node-builtins", "client/src/node.ts", /^(node:)?fs$/],
        ["client-only-web-shared", "client/src/heavy.ts", /^shared\/src\/index\.ts$/],
        ["console-not-to-services", "console/src/index.ts", /^gpu-runner\/src\/index\.ts$/],
        ["console-not-to-node-builtins", "console/src/node.ts", /^(node:)?fs$/],
        ["console-only-web-shared", "console/src/heavy.ts", /^shared\/src\/index\.ts$/],
        ["nothing-to-tools", "gpu-runner/src/to-tools.ts", /^tools\/stack\/index\.ts$/],
        ["nothing-to-tools", "edge/src/to-tools.ts", /^tools\/stack\/index\.ts$/],
        ["tools-not-to-edge", "tools/into-edge.ts", /^edge\/src\/index\.ts$/],
      ];
      for (const [rule, from, to] of expected) {
        expect(found(rule, from, to), `${rule}: ${from} → ${to}\nreported:\n${listing}`).toBe(true);
      }

      // Allowed: the runner's own onnxruntime-node import and the edge's `cloudflare:*` import.
      expect(
        violations.filter((v) => v.from === "gpu-runner/src/index.ts").map(describeViolation),
      ).toEqual([]);
      expect(
        violations.filter((v) => /^cloudflare:workers$/.test(v.to)).map(describeViolation),
      ).toEqual([]);
      // Allowed: the client's use of shared's web-only entry points, and Node in its tests.
      expect(
        violations.filter((v) => /^client\/src\/light/.test(v.from)).map(describeViolation),
      ).toEqual([]);
      // Allowed: the console's use of shared's loaders and webhooks, and Node in its tests.
      expect(
        violations.filter((v) => /^console\/src\/light/.test(v.from)).map(describeViolation),
      ).toEqual([]);
      // Allowed: tools/ starting the runner.
      expect(
        violations.filter((v) => v.from === "tools/stack/index.ts").map(describeViolation),
      ).toEqual([]);
    });
  });
});

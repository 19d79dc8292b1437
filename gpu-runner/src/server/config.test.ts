import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadRunnerConfig, secretPath } from "./config";

const home = mkdtempSync(join(tmpdir(), "epicache-config-"));
afterAll(() => rmSync(home, { recursive: true, force: true }));

describe("runner config", () => {
  it("layers defaults, a file, the environment and the command line, in that order", () => {
    const file = join(home, "runner.json");
    writeFileSync(file, JSON.stringify({ port: 9001, concurrency: 2, build: { budget: 512 } }));
    const c = loadRunnerConfig({
      file,
      env: {
        EPICACHE_HOME: home,
        EPICACHE_RUNNER_PORT: "9002",
        EPICACHE_RUNNER_SECRET: "s".repeat(20),
      },
      overrides: { host: "0.0.0.0" },
    });
    expect(c).toMatchObject({
      host: "0.0.0.0",
      port: 9002,
      concurrency: 2,
      secret: "s".repeat(20),
      numerics: "fast",
      store: join(home, "store"),
    });
    expect(c.build).toEqual({
      method: "epicache",
      episodes: 4,
      budget: 512,
      block: 512,
      dtype: "f16",
    });
  });

  it("generates a local secret once and keeps it", () => {
    const a = loadRunnerConfig({ env: { EPICACHE_HOME: home } });
    expect(a.secret).toMatch(/^[0-9a-f]{64}$/);
    expect(readFileSync(secretPath({ EPICACHE_HOME: home }), "utf8").trim()).toBe(a.secret);
    expect(loadRunnerConfig({ env: { EPICACHE_HOME: home } }).secret).toBe(a.secret);
  });

  it("names every bad value and where it came from, without echoing the secret", () => {
    let message = "";
    try {
      loadRunnerConfig({
        env: {
          EPICACHE_HOME: home,
          EPICACHE_RUNNER_PORT: "http",
          EPICACHE_RUNNER_CONCURRENCY: "0",
          EPICACHE_NUMERICS: "turbo",
          EPICACHE_RUNNER_SECRET: "short",
        },
      });
    } catch (e) {
      expect((e as { code: string }).code).toBe("invalid_argument");
      message = (e as Error).message;
    }
    expect(message).toContain("port from EPICACHE_RUNNER_PORT");
    expect(message).toContain('(got "http")');
    expect(message).toContain("concurrency from EPICACHE_RUNNER_CONCURRENCY");
    expect(message).toContain("numerics from EPICACHE_NUMERICS");
    expect(message).toContain("secret from EPICACHE_RUNNER_SECRET: must be at least 16 characters");
    expect(message).not.toContain("short");
    const bad = join(home, "bad.json");
    writeFileSync(bad, JSON.stringify({ prot: 1 }));
    expect(() => loadRunnerConfig({ file: bad, env: { EPICACHE_HOME: home } })).toThrow(
      /prot|Unrecognized/,
    );
  });
});

/**
 * The console as `wrangler dev` serves it (no runner, no model): wrangler.toml's `[build]` bundles
 * console/ and its `[assets]` answer `/` and the console's files, while every other path still
 * reaches the Worker's API. (The edge's Vitest integration does not route requests to assets;
 * test/console.browser.test.ts drives the console itself in Chromium against the whole stack.)
 */
import { randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REPO_ROOT } from "../gpu-runner/src/paths";
import { startEdgeDev, type RunningEdge } from "../tools/stack";
import { freePort } from "../gpu-runner/src/testing";

describe("the console under wrangler dev", () => {
  const dir = mkdtempSync(join(tmpdir(), "epicache-console-"));
  let edge: RunningEdge | undefined;

  beforeAll(async () => {
    // A runner URL nothing answers on: these requests never reach a runner.
    edge = await startEdgeDev({
      runnerUrl: `http://127.0.0.1:${await freePort()}`,
      secret: `s-${randomUUID()}`,
      adminToken: `adm-${randomUUID()}`,
      port: await freePort(),
      stateDir: dir,
    });
  }, 180_000);

  afterAll(async () => {
    await edge?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("answers / with the console's page, and its script and style", async () => {
    const page = await fetch(`${edge?.url}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toMatch(/^text\/html/);
    expect(await page.text()).toBe(
      readFileSync(join(REPO_ROOT, "console", "static", "index.html"), "utf8"),
    );
    const script = await fetch(`${edge?.url}/console.js`);
    expect(script.status).toBe(200);
    expect(script.headers.get("content-type")).toMatch(/javascript/);
    // The bundle holds the client (it signs webhooks with Web Crypto) and the page's code.
    const code = await script.text();
    expect(code).toContain("webhook-signature");
    expect(code).toContain("conversation-form");
    const style = await fetch(`${edge?.url}/console.css`);
    expect(style.headers.get("content-type")).toMatch(/^text\/css/);
  });

  it("leaves every other path to the Worker: the API, its errors, unknown paths", async () => {
    expect(await (await fetch(`${edge?.url}/healthz`)).json()).toEqual({ ok: true });
    const api = await fetch(`${edge?.url}/v1/conversations/conv-1/versions`);
    expect(api.status).toBe(401);
    expect(((await api.json()) as { error: { code: string } }).error.code).toBe("unauthorized");
    const unknown = await fetch(`${edge?.url}/no-such-page`);
    expect(unknown.status).toBe(404);
    expect(((await unknown.json()) as { error: { code: string } }).error.code).toBe("not_found");
  });
});

// The edge's suites run inside workerd (Cloudflare's Vitest integration), with the bindings of
// ../wrangler.toml, the migrations of ./migrations applied by src/testing/apply-migrations.ts, and
// test secrets. Outbound calls to runners are answered by fake runners (src/testing/fake-runner.ts).
// The console is built first: wrangler.toml's `[assets]` folder must exist (wrangler's `[build]`,
// which builds it for `wrangler dev`, does not run here). The Vitest integration does not route
// requests to assets (test/console.served.test.ts checks them under wrangler dev).
import { fileURLToPath } from "node:url";
import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-pool-workers";
import { defineConfig } from "vitest/config";
import { buildConsole } from "../console/build.mjs";

const root = fileURLToPath(new URL(".", import.meta.url));

export default defineConfig(async () => {
  await buildConsole();
  return {
    root,
    plugins: [
      cloudflareTest({
        main: "./src/index.ts",
        wrangler: { configPath: "../wrangler.toml" },
        miniflare: {
          bindings: {
            TEST_MIGRATIONS: await readD1Migrations(`${root}migrations`),
            RUNNER_SECRET: "test-runner-secret",
            ADMIN_TOKEN: "test-admin-token",
          },
        },
      }),
    ],
    test: {
      include: ["src/**/*.test.ts"],
      setupFiles: ["./src/testing/apply-migrations.ts"],
    },
  };
});

// @ts-check
/**
 * Builds the console the edge serves at `/` (Workers static assets, `[assets]` in wrangler.toml):
 * console/static/* copied as they are, and console/src/console.ts bundled by esbuild (with
 * @epicache/client and shared's conversation loaders) into console/dist/console.js.
 *
 * Runs as wrangler's `[build]` command, so `npm start`, `wrangler dev` and `wrangler deploy` build it
 * first; the edge's vitest config calls {@link buildConsole} too (wrangler's assets directory must
 * exist there). `node console/build.mjs` builds it by hand.
 */
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));

/** The folder wrangler.toml's `[assets]` serves. */
export const CONSOLE_DIST = join(here, "dist");

/**
 * Writes the console to `outdir` (default {@link CONSOLE_DIST}): what it holds afterwards is the
 * build's files and nothing else.
 *
 * @param {{ outdir?: string }} [options]
 * @returns {Promise<{ outdir: string, bytes: number }>} where it went, and the bundle's size
 */
export async function buildConsole(options = {}) {
  const outdir = options.outdir ?? CONSOLE_DIST;
  const result = await build({
    entryPoints: [join(here, "src", "console.ts")],
    outfile: join(outdir, "console.js"),
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    minify: true,
    sourcemap: "linked",
    legalComments: "none",
    write: false,
    logLevel: "warning",
  });
  /** @type {Map<string, Uint8Array>} */
  const files = new Map(result.outputFiles.map((f) => [f.path, f.contents]));
  for (const name of readdirSync(join(here, "static")))
    files.set(join(outdir, name), readFileSync(join(here, "static", name)));
  // wrangler dev builds once more when its watcher is ready, while it serves the folder: each file
  // is replaced whole (renamed into place), and only when it changed (a change reloads the assets).
  mkdirSync(outdir, { recursive: true });
  for (const [path, contents] of files) {
    const old = existsSync(path) ? readFileSync(path) : undefined;
    if (old !== undefined && Buffer.compare(old, contents) === 0) continue;
    const temporary = `${path}.${process.pid}.tmp`;
    writeFileSync(temporary, contents);
    renameSync(temporary, path);
  }
  for (const name of readdirSync(outdir))
    if (!files.has(join(outdir, name)))
      rmSync(join(outdir, name), { recursive: true, force: true });
  return { outdir, bytes: files.get(join(outdir, "console.js"))?.length ?? 0 };
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { outdir, bytes } = await buildConsole();
  console.log(`console: ${outdir} (console.js ${(bytes / 1024).toFixed(1)} KiB)`);
}

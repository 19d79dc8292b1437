/**
 * Dependency direction of the EpiCache monorepo, checked by `npm run deps:check` and by
 * test/dependency-direction.test.ts.
 *
 *   edge/  ──┐
 *            ├──▶ shared/   (pure TypeScript, Web-standard APIs only)
 *   gpu-runner/ ┘     ▲
 *   client/ ──────────┘     (only shared's web-only entry points: webhooks, errors)
 *     ▲
 *   console/                (the browser console the edge serves: the client, and shared's loaders)
 *
 *   tools/  ──▶ gpu-runner/, shared/   (the whole stack, `npm start`, and the tools spanning both
 *               sides: the load benchmark, the S3 test server; the edge it starts as a process under
 *               `wrangler dev`, never by import)
 *   test/   ──▶ anything              (the end-to-end tests)
 *
 * The edge (Cloudflare Workers) and the runner (Node, onnxruntime-node) share nothing but shared/.
 * The client (@epicache/client, for Node, browsers and Workers) talks to the edge over HTTP; its
 * types are generated from the edge's OpenAPI document, which client/scripts gets by running
 * edge/scripts/openapi.ts in a process of its own, never by importing the edge.
 * Paths in the rules are relative to the directory the cruise runs from (the repo root). Workspace
 * packages are imported by name (`@epicache/shared`); with `preserveSymlinks: false` the
 * node_modules/@epicache/* symlinks resolve to their real folders, so such an import is seen as
 * `shared/src/index.ts` and the rules below apply to it like to a relative import.
 *
 * @type {import('dependency-cruiser').IConfiguration}
 */
module.exports = {
  forbidden: [
    {
      name: "edge-not-to-gpu-runner",
      comment:
        "The edge (Cloudflare Worker) must not import the runner: they talk over HTTP and share " +
        "only shared/. Move what both need into shared/.",
      severity: "error",
      from: { path: "^edge/" },
      to: { path: "^gpu-runner/" },
    },
    {
      name: "gpu-runner-not-to-edge",
      comment:
        "The runner must not import the edge: they talk over HTTP and share only shared/. " +
        "Move what both need into shared/.",
      severity: "error",
      from: { path: "^gpu-runner/" },
      to: { path: "^edge/" },
    },
    {
      name: "nothing-to-tools",
      comment:
        "tools/ sits above the packages: it starts the runner and the edge together (`npm start`) and " +
        "holds the tools that span both. Only tools/ itself and the tests may import it; the edge, the " +
        "runner, shared/, the client and the console must not (move what they need down into them).",
      severity: "error",
      from: { pathNot: "^(tools|test)/" },
      to: { path: "^tools/" },
    },
    {
      name: "tools-not-to-edge",
      comment:
        "tools/ runs the edge as a process (`wrangler dev`, tools/stack/start-stack.ts), never imports " +
        "its code: the edge runs in workerd, and importing it into Node would hide that it is a " +
        "separate service reached over HTTP.",
      severity: "error",
      from: { path: "^tools/" },
      to: { path: "^edge/" },
    },
    {
      name: "shared-not-to-packages",
      comment:
        "shared/ is the bottom layer: it must not import the edge, the runner, the client, the tools or the tests.",
      severity: "error",
      from: { path: "^shared/" },
      to: { path: "^(edge|gpu-runner|client|tools|test)/" },
    },
    {
      name: "client-not-to-services",
      comment:
        "The client talks to the edge over HTTP, with types generated from its OpenAPI document: it " +
        "must not import the edge, the runner or the tests (client/scripts runs edge/scripts/openapi.ts " +
        "as a child process for the document).",
      severity: "error",
      from: { path: "^client/" },
      to: { path: "^(edge|gpu-runner|test)/" },
    },
    {
      name: "client-not-to-node-builtins",
      comment:
        "The client runs in Node, browsers and Workers: Web-standard APIs only (fetch, Web Crypto, " +
        "ReadableStream), no Node core modules. Its scripts and tests (Node-side) may use them.",
      severity: "error",
      from: { path: "^client/src/", pathNot: "\\.test\\.ts$" },
      to: { dependencyTypes: ["core"] },
    },
    {
      name: "client-only-web-shared",
      comment:
        "The client takes from shared/ only its dependency-free entry points " +
        "(`@epicache/shared/webhooks`, `@epicache/shared/errors`), not the whole package (zod, the " +
        "conversation loaders, the store), so that it stays small in a browser bundle.",
      severity: "error",
      from: { path: "^client/src/", pathNot: "\\.test\\.ts$" },
      to: { path: "^shared/", pathNot: "^shared/src/(webhooks/index|errors)\\.ts$" },
    },
    {
      name: "console-not-to-services",
      comment:
        "The console is a page in a browser: it talks to the edge over HTTP through @epicache/client " +
        "and must not import the edge, the runner or the tests.",
      severity: "error",
      from: { path: "^console/src/", pathNot: "\\.test\\.ts$" },
      to: { path: "^(edge|gpu-runner|test)/" },
    },
    {
      name: "console-not-to-node-builtins",
      comment:
        "The console runs in browsers: Web APIs only, no Node core modules (its tests and build script may use them).",
      severity: "error",
      from: { path: "^console/src/", pathNot: "\\.test\\.ts$" },
      to: { dependencyTypes: ["core"] },
    },
    {
      name: "console-only-web-shared",
      comment:
        "The console takes from shared/ only its dependency-free parts (`@epicache/shared/loaders`, " +
        "and through the client `webhooks` and `errors`), not the whole package (zod, the store, the " +
        "codecs), so that its bundle stays small.",
      severity: "error",
      from: { path: "^console/src/", pathNot: "\\.test\\.ts$" },
      to: { path: "^shared/", pathNot: "^shared/src/(webhooks/|errors\\.ts$|conversation/)" },
    },
    {
      name: "edge-not-to-node-builtins",
      comment:
        "The edge is a Worker: Web-standard APIs and `cloudflare:*` modules only, no Node core " +
        "modules (`node:crypto`, `node:buffer`, …), which would tie it to the nodejs_compat flag. " +
        "Its tests may use them.",
      severity: "error",
      from: { path: "^edge/src/", pathNot: "\\.test\\.ts$" },
      to: { dependencyTypes: ["core"] },
    },
    {
      name: "shared-not-to-node-builtins",
      comment:
        "shared/ runs in both Node and workerd, so it uses Web-standard APIs only: no Node core " +
        "modules (`node:fs`, `fs`, `node:crypto`, …). Use fetch/Web Crypto/TextEncoder, or move the " +
        "code into gpu-runner/.",
      severity: "error",
      from: { path: "^shared/" },
      to: { dependencyTypes: ["core"] },
    },
    {
      name: "shared-not-to-cloudflare",
      comment:
        "shared/ must not import Workers runtime modules (`cloudflare:*`); those belong in edge/.",
      severity: "error",
      from: { path: "^shared/" },
      to: { path: "^cloudflare:" },
    },
    {
      name: "onnxruntime-only-in-gpu-runner",
      comment:
        "onnxruntime-node is a native Node addon: only gpu-runner/ may import it (it cannot load on " +
        "Workers and shared/ must stay portable).",
      severity: "error",
      from: { pathNot: "^gpu-runner/" },
      to: { path: "(^|/)onnxruntime-node(/|$)" },
    },
    {
      name: "cloudflare-only-in-edge",
      comment: "`cloudflare:*` modules exist only inside workerd: only edge/ may import them.",
      severity: "error",
      from: { pathNot: "^edge/" },
      to: { path: "^cloudflare:" },
    },
    {
      name: "no-circular",
      comment:
        "This dependency is part of a cycle. Break it (extract the shared part, or invert the " +
        "dependency) so modules can be understood and tested one at a time.",
      severity: "error",
      from: {},
      to: { circular: true },
    },
    {
      name: "not-to-unresolvable",
      comment:
        "This import cannot be resolved to a file on disk: a typo, a missing dependency in a " +
        "package.json, or a missing file. `cloudflare:*` modules are exempt: workerd provides them.",
      severity: "error",
      from: {},
      to: { couldNotResolve: true, pathNot: "^cloudflare:" },
    },
  ],
  options: {
    // Third-party code is a leaf: note the import, do not cruise into it.
    doNotFollow: { path: ["node_modules"] },
    // Generated or scratch folders of our own packages. Anchored: a bare `dist/` would also drop
    // node_modules/<pkg>/dist/… targets (onnxruntime-node, hono) and blind the rules to them.
    exclude: {
      path: "^(?:shared|gpu-runner|edge|client|console|tools|test)/(?:dist|coverage|\\.wrangler)/",
    },
    moduleSystems: ["es6", "cjs"],
    // Count `import type` too: a type-only import still couples the packages.
    tsPreCompilationDeps: true,
    // Follow the node_modules/@epicache/* symlinks to shared/, edge/, gpu-runner/.
    preserveSymlinks: false,
    // The root project (shared/, gpu-runner/, tools/, test/). No `paths` are used; workspace packages
    // resolve through their package.json `exports`.
    tsConfig: { fileName: "tsconfig.json" },
    enhancedResolveOptions: {
      exportsFields: ["exports"],
      conditionNames: ["import", "require", "node", "default", "types"],
      extensions: [".ts", ".tsx", ".mts", ".cts", ".js", ".mjs", ".cjs", ".json", ".d.ts"],
      mainFields: ["module", "main", "types", "typings"],
    },
    skipAnalysisNotInRules: true,
    reporterOptions: {
      text: { highlightFocused: true },
    },
  },
};

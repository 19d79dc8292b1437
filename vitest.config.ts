import { defineConfig } from "vitest/config";

// Node-side suites: shared/, gpu-runner/, the client, the console's and the end-to-end tests. The edge's suites run inside
// workerd with their own config (edge/vitest.config.ts).
export default defineConfig({
  test: {
    include: [
      "shared/src/**/*.test.ts",
      "gpu-runner/src/**/*.test.ts",
      "client/src/**/*.test.ts",
      "client/scripts/**/*.test.ts",
      "console/src/**/*.test.ts",
      "test/**/*.test.ts",
    ],
    testTimeout: 300_000,
    hookTimeout: 300_000,
    // Model suites each hold an onnxruntime session; two cores do not gain from running them side by side.
    fileParallelism: false,
    // The AWS SDK's notice that its 2027 releases need Node 22 is noise in every S3 suite.
    env: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true" },
    reporters: ["default"],
  },
});

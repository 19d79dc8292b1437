// ESLint with typescript-eslint's recommended rules (without type information: fast enough to run on
// every `npm test`). Formatting is Prettier's (.prettierrc.json), checked beside it.
import js from "@eslint/js";
import globals from "globals";
import tseslint from "typescript-eslint";

export default tseslint.config(
  {
    ignores: [
      "**/node_modules/",
      "**/dist/",
      ".epicache/",
      "**/.wrangler/",
      "bench/",
      "client/src/generated/",
      "edge/worker-configuration.d.ts",
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      // `_`-prefixed bindings are the way to say "deliberately unused" (destructuring a field away).
      "@typescript-eslint/no-unused-vars": [
        "error",
        {
          argsIgnorePattern: "^_",
          varsIgnorePattern: "^_",
          caughtErrors: "none",
          ignoreRestSiblings: true,
        },
      ],
    },
  },
  {
    files: ["console/**", "client/**"],
    languageOptions: { globals: { ...globals.browser } },
  },
);

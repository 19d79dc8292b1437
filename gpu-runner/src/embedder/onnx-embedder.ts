/**
 * The sentence embedder of stage 1 and of question routing (docs/design.md sections 1 and 4): a BERT-style
 * ONNX model run by onnxruntime-node, mean-pooled over the attention mask and L2-normalised.
 *
 * Texts are tokenized with the model's tokenizer.json and cut to the length the model was trained
 * with (256 word pieces, specials included, for all-MiniLM-L6-v2), sorted by length and run in
 * batches padded only to their own longest text; results come back in input order. Padding is
 * masked, so a text's vector does not depend on its batch (up to float rounding, about 1e-7).
 */
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import * as ort from "onnxruntime-node";
import { EpicacheError } from "@epicache/shared";
import { MODELS, modelPath, requireModel } from "../model-registry";
import { meanPoolNormalized } from "./pooling";
import { SentenceTokenizer } from "./sentence-tokenizer";

/** What the ONNX file does not say about an embedder: its public name and trained input length. */
interface EmbedderProfile {
  /** The name clients and manifests use, e.g. "sentence-transformers/all-MiniLM-L6-v2". */
  modelId: string;
  /** Word pieces per text, special tokens included (sentence-transformers' `max_seq_length`). */
  maxLength: number;
}

/** Profiles of the registry's embedders, by registry id. */
const PROFILES: Record<string, EmbedderProfile> = {
  // max_seq_length 256 in the model's sentence_bert_config.json; its position table has 512 rows.
  "all-minilm-l6-v2-int8": { modelId: "sentence-transformers/all-MiniLM-L6-v2", maxLength: 256 },
};

/** Used for a file outside the registry unless the caller says otherwise. */
const DEFAULT_MAX_LENGTH = 256;

/** How {@link openEmbedder} opens a model. */
export interface EmbedderOptions {
  /** Intra-op threads; 0 or absent lets onnxruntime choose (all cores). */
  threads?: number;
  /** The model's public name; defaults to the registry's for a pulled model, else the folder name. */
  modelId?: string;
  /** Word pieces per text, specials included; defaults to the model's trained length (256 for MiniLM; at most its position table, 512). */
  maxLength?: number;
}

/** Per-call options of {@link OnnxEmbedder.embed}. */
export interface EmbedOptions {
  /** Texts per onnxruntime run (default DEFAULT_BATCH_SIZE). */
  batchSize?: number;
}

// On 2 CPU threads with ~110-token windows, 8–32 run at about the same speed and 64 is slower
// (larger attention buffers). 4 keeps a batch's transient memory small next to the decoder's: with
// 16, embedding LoCoMo conv-26's 105 windows took the build's peak RSS up by 300 MB.
const DEFAULT_BATCH_SIZE = 4;

/**
 * A sentence embedder in an onnxruntime-node session (CPU). Open it with {@link openEmbedder};
 * release it when done. `embed` may be called concurrently (onnxruntime sessions allow it).
 */
export class OnnxEmbedder {
  private constructor(
    private readonly session: ort.InferenceSession,
    private readonly tokenizer: SentenceTokenizer,
    /** Public model name, e.g. "sentence-transformers/all-MiniLM-L6-v2". */
    readonly modelId: string,
    /** Length of every vector (384 for MiniLM). */
    readonly dimension: number,
    /** Word pieces per text, specials included; longer texts are cut at the end. */
    readonly maxLength: number,
    /** Whether the graph takes `token_type_ids` (BERT exports do; some others do not). */
    private readonly takesTokenTypes: boolean,
  ) {}

  /** Opens the ONNX file at `path` with `tokenizer.json` beside it. Prefer {@link openEmbedder}. */
  static async load(path: string, opts: EmbedderOptions = {}): Promise<OnnxEmbedder> {
    const threads = opts.threads ?? 0;
    if (!Number.isInteger(threads) || threads < 0)
      throw new EpicacheError(
        "invalid_argument",
        `threads must be a non-negative integer, got ${threads}`,
      );
    const tokenizerPath = join(dirname(path), "tokenizer.json");
    if (!existsSync(tokenizerPath))
      throw new EpicacheError(
        "model_invalid",
        `the embedder ${path} has no tokenizer.json beside it`,
      );
    const profile = profileOf(path);
    const maxLength = opts.maxLength ?? profile?.maxLength ?? DEFAULT_MAX_LENGTH;
    if (!Number.isInteger(maxLength) || maxLength < 3)
      throw new EpicacheError(
        "invalid_argument",
        `maxLength must be an integer of at least 3, got ${maxLength}`,
      );
    const tokenizer = SentenceTokenizer.fromFile(tokenizerPath);
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(path, {
        executionProviders: ["cpu"],
        graphOptimizationLevel: "all",
        // Batches differ in length; an arena would keep the largest forever, next to the decoder's.
        enableCpuMemArena: false,
        // As the decoder (runtime/decoder.ts): idle threads must not spin and starve the rest of the runner.
        extra: {
          session: { intra_op: { allow_spinning: "0" }, inter_op: { allow_spinning: "0" } },
        },
        ...(threads > 0 ? { intraOpNumThreads: threads } : {}),
      });
    } catch (e) {
      throw new EpicacheError(
        "runtime_failed",
        `onnxruntime could not load the embedder ${path}: ${(e as Error).message}`,
        { cause: e },
      );
    }
    try {
      const { dimension, takesTokenTypes } = checkSignature(session, path);
      const modelId =
        opts.modelId ??
        profile?.modelId ??
        `local/${dirname(resolve(path)).split(/[\\/]/).pop() ?? "embedder"}`;
      return new OnnxEmbedder(session, tokenizer, modelId, dimension, maxLength, takesTokenTypes);
    } catch (e) {
      await session.release();
      throw e;
    }
  }

  /**
   * One unit-norm vector of {@link dimension} per text, in input order. Texts longer than
   * {@link maxLength} word pieces are cut at the end; an empty string is embedded as `[CLS] [SEP]`.
   */
  async embed(texts: readonly string[], opts: EmbedOptions = {}): Promise<Float32Array[]> {
    const batchSize = opts.batchSize ?? DEFAULT_BATCH_SIZE;
    if (!Number.isInteger(batchSize) || batchSize < 1)
      throw new EpicacheError(
        "invalid_argument",
        `batchSize must be a positive integer, got ${batchSize}`,
      );
    const ids = texts.map((t, i) => {
      if (typeof t !== "string")
        throw new EpicacheError("invalid_argument", `text ${i} is not a string`);
      return this.tokenizer.encode(t, this.maxLength);
    });
    // Longest first, ties in input order: each batch pads to nearly its own length.
    const order = ids.map((_, i) => i).sort((a, b) => ids[b].length - ids[a].length || a - b);
    const out = new Array<Float32Array>(texts.length);
    for (let start = 0; start < order.length; start += batchSize) {
      const members = order.slice(start, start + batchSize);
      const vectors = await this.run(members.map((i) => ids[i]));
      members.forEach((i, j) => (out[i] = vectors[j]));
    }
    return out;
  }

  /** Runs one padded batch and pools it. */
  private async run(batch: number[][]): Promise<Float32Array[]> {
    const B = batch.length;
    const T = batch.reduce((m, s) => Math.max(m, s.length), 0);
    const inputIds = new BigInt64Array(B * T).fill(BigInt(this.tokenizer.padId)); // [B, T]
    const mask = new BigInt64Array(B * T); // [B, T], 1 on tokens, 0 on padding (right side)
    batch.forEach((seq, b) => {
      for (let t = 0; t < seq.length; t++) {
        inputIds[b * T + t] = BigInt(seq[t]);
        mask[b * T + t] = 1n;
      }
    });
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor("int64", inputIds, [B, T]),
      attention_mask: new ort.Tensor("int64", mask, [B, T]),
    };
    // A single segment: every token type is 0.
    if (this.takesTokenTypes)
      feeds.token_type_ids = new ort.Tensor("int64", new BigInt64Array(B * T), [B, T]);
    let hidden: ort.Tensor;
    try {
      hidden = (await this.session.run(feeds)).last_hidden_state; // [B, T, dimension]
    } catch (e) {
      throw new EpicacheError(
        "runtime_failed",
        `the embedder failed on a batch of ${B} × ${T} tokens: ${(e as Error).message}`,
        { cause: e },
      );
    }
    const dims = hidden.dims;
    if (dims.length !== 3 || dims[0] !== B || dims[1] !== T || dims[2] !== this.dimension) {
      throw new Error(
        `embedder: last_hidden_state is [${dims.join(", ")}], expected [${B}, ${T}, ${this.dimension}]`,
      );
    }
    return meanPoolNormalized(hidden.data as Float32Array, mask, B, T, this.dimension);
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

/**
 * Opens the sentence embedder: the pulled default (`requireModel("embedder")`, all-MiniLM-L6-v2
 * int8) or the ONNX file at `path` with `tokenizer.json` beside it.
 *
 * @example
 * ```ts
 * const embedder = await openEmbedder(undefined, { threads: 2 });
 * const [a, b] = await embedder.embed(["I adopted a puppy.", "We got a new dog."]);
 * // a and b have embedder.dimension (384) entries and unit norm; their dot product is the cosine.
 * await embedder.release();
 * ```
 */
export async function openEmbedder(
  path?: string,
  opts: EmbedderOptions = {},
): Promise<OnnxEmbedder> {
  return OnnxEmbedder.load(path ?? requireModel("embedder"), opts);
}

/** The profile of a registry embedder at its pulled path, if `path` is one. */
function profileOf(path: string): EmbedderProfile | undefined {
  const wanted = resolve(path);
  const spec = MODELS.find((m) => m.kind === "embedder" && resolve(modelPath(m)) === wanted);
  return spec ? PROFILES[spec.id] : undefined;
}

/** Checks the graph's inputs and output, and reads the embedding width from it. */
function checkSignature(
  session: ort.InferenceSession,
  path: string,
): { dimension: number; takesTokenTypes: boolean } {
  const unsupported = (why: string) =>
    new EpicacheError("model_unsupported", `the embedder ${path} ${why}`);
  const known = new Set(["input_ids", "attention_mask", "token_type_ids"]);
  for (const name of ["input_ids", "attention_mask"])
    if (!session.inputNames.includes(name)) throw unsupported(`has no input ${name}`);
  const extra = session.inputNames.filter((n) => !known.has(n));
  if (extra.length > 0)
    throw unsupported(`takes inputs this runner does not feed: ${extra.join(", ")}`);
  const out = session.outputMetadata.find((m) => m.name === "last_hidden_state");
  if (!out || !out.isTensor)
    throw unsupported("has no last_hidden_state output (token states to pool)");
  const dimension = out.shape[2];
  if (out.shape.length !== 3 || typeof dimension !== "number" || !(dimension > 0)) {
    throw unsupported(
      `has last_hidden_state of shape [${out.shape.join(", ")}]; a fixed width [batch, sequence, dim] is needed`,
    );
  }
  return { dimension, takesTokenTypes: session.inputNames.includes("token_type_ids") };
}

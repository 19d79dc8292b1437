/**
 * The decoder graph in an onnxruntime-node session: one `forward` runs new tokens over a KV cache.
 */
import * as ort from "onnxruntime-node";
import { EpicacheError } from "@epicache/shared";
import type { LlamaConfig } from "./config";
import type { KvCache } from "./kv-cache";
import type { Numerics } from "./decoder-graph";
import { ropeTables } from "./rope";
import { libmRopeTable } from "./libm-rope";
import { dirname } from "node:path";

export interface RuntimeOptions {
  /** "cpu" (default) or "cuda" (GPU images). */
  executionProvider: "cpu" | "cuda";
  /** Intra-op threads; 0 lets onnxruntime choose (all cores). */
  threads: number;
}

export const DEFAULT_RUNTIME: RuntimeOptions = { executionProvider: "cpu", threads: 0 };

export interface ForwardResult {
  /** [rows, vocab] for the requested rows. */
  logits: Float32Array;
  /** Per layer [kvHeads, T, headDim]. */
  keys: Float32Array[];
  values: Float32Array[];
  /**
   * When a scoring span was given: per layer [kvHeads, past + T], the attention scores of the
   * cache entries (index < past; entry j of head h at j, padding 0) and of the new tokens (at past + t;
   * the span's own 0). See decoder-graph.ts.
   */
  scores: Float32Array[] | null;
  /** Per layer, the past length the graph saw (where the new tokens start in that layer's `scores` rows). */
  pasts: number[];
}

export interface ForwardOptions {
  /** The last `scoreSpan` tokens form the scoring span (default 0: no scores). */
  scoreSpan?: number;
  /**
   * Exact and fast numerics: attend over the cache in chunks of this many entries (0: all at once).
   * Default: chunks of 1024 for calls of 16 tokens or more, whose attention would otherwise take
   * memory in proportion to the cache; all at once for decoding steps.
   */
  attentionChunk?: number;
  /**
   * Exact and fast numerics, calls without a scoring span: run at most this many tokens per graph
   * call (default FORWARD_PART; 0: all in one call). See FORWARD_PART.
   */
  part?: number;
}

/** Chunk size of calls that prefill (see ForwardOptions.attentionChunk). */
export const ATTENTION_CHUNK = 1024;

/**
 * `forward` runs a prompt longer than this without a scoring span in graph calls of this many
 * tokens, each over a copy of the cache and the parts before it, as llama.cpp runs batches of 512:
 * the attention of the whole prompt's causal square is then computed only below its diagonal, and
 * each call's transient memory follows the part, not the prompt.
 */
export const FORWARD_PART = 512;

/**
 * `prefill` runs its tokens in graph calls of this many, appending each call's K/V to the cache as
 * it goes. A call's transient memory follows its length (chunked attention holds several
 * [KV, G, T, C] tensors at once), while its speed barely does once a call has a hundred tokens or
 * so: calls of 128 fill a long cache as fast as calls of 512 and with a lower peak (README, "The
 * runtime").
 */
export const PREFILL_PART = 128;

export class Decoder {
  private constructor(
    readonly config: LlamaConfig,
    readonly numerics: Numerics,
    private readonly session: ort.InferenceSession,
    /** llama.cpp's cos/sin for `ggml` numerics (libm-rope.ts), or null. */
    private readonly ropeLibm: Float32Array | null = null,
  ) {}

  static async load(
    modelPath: string,
    config: LlamaConfig,
    numerics: Numerics,
    opts: RuntimeOptions = DEFAULT_RUNTIME,
    log?: (m: string) => void,
  ): Promise<Decoder> {
    const ropeLibm =
      numerics === "ggml" && config.ropeScaling === null
        ? libmRopeTable(
            config.ropeTheta,
            config.headDim,
            Math.min(config.contextLength, 32768),
            dirname(modelPath),
            log,
          )
        : null;
    try {
      const session = await ort.InferenceSession.create(modelPath, {
        executionProviders: [opts.executionProvider],
        graphOptimizationLevel: "all",
        // Within a call the pool's threads spin between operators: a decoding step runs some 2,000
        // of them, mostly small, and waking a parked thread for each cost a quarter of the step
        // (README, "The runtime"). When the call returns they stop, so an idle runner leaves the
        // cores to everything else on the machine (the HTTP server, a second runtime).
        extra: {
          session: {
            intra_op: { allow_spinning: "1" },
            inter_op: { allow_spinning: "0" },
            force_spinning_stop: "1",
          },
        },
        ...(opts.threads > 0 ? { intraOpNumThreads: opts.threads } : {}),
      });
      return new Decoder(config, numerics, session, ropeLibm);
    } catch (e) {
      throw new EpicacheError(
        "runtime_failed",
        `onnxruntime could not load ${modelPath} on ${opts.executionProvider}: ${(e as Error).message}`,
        { cause: e },
      );
    }
  }

  /**
   * Runs `tokens` at `positions` over `cache` (which it does not change) and returns the logits of
   * `logitRows` (indices into `tokens`) and the tokens' new K/V.
   */
  async forward(
    tokens: readonly number[],
    positions: readonly number[],
    cache: KvCache,
    logitRows: readonly number[],
    opts: ForwardOptions = {},
  ): Promise<ForwardResult> {
    const part = opts.part ?? FORWARD_PART;
    if (!Number.isInteger(part) || part < 0)
      throw new EpicacheError("invalid_argument", `forward: parts of ${part} tokens`);
    const split =
      part > 0 &&
      tokens.length > part &&
      positions.length === tokens.length &&
      (opts.scoreSpan ?? 0) === 0 &&
      this.numerics !== "ggml";
    return split
      ? this.forwardInParts(tokens, positions, cache, logitRows, part, opts)
      : this.forwardOnce(tokens, positions, cache, logitRows, opts);
  }

  /**
   * Runs `tokens` at `positions` over `cache` and appends their K/V to it (forward, then append), in
   * graph calls of `part` tokens (default PREFILL_PART; in ggml numerics FORWARD_PART, llama.cpp's batch):
   * each part reads the cache with the parts before it, so there is no copy of the cache and no
   * assembled output. Returns the logits of `logitRows`. If a part fails, the cache keeps the parts
   * before it.
   */
  async prefill(
    tokens: readonly number[],
    positions: readonly number[],
    cache: KvCache,
    logitRows: readonly number[],
    opts: { part?: number } = {},
  ): Promise<Float32Array> {
    const T = tokens.length;
    const part = opts.part ?? (this.numerics === "ggml" ? FORWARD_PART : PREFILL_PART);
    if (!Number.isInteger(part) || part < 0)
      throw new EpicacheError("invalid_argument", `prefill: parts of ${part} tokens`);
    if (positions.length !== T)
      throw new EpicacheError(
        "invalid_argument",
        `prefill: ${T} tokens with ${positions.length} positions`,
      );
    return this.runParts(tokens, positions, cache, logitRows, part === 0 ? T : part, {});
  }

  /** {@link forward} in calls of `part` tokens, each over a copy of `cache` holding the parts before it. */
  private async forwardInParts(
    tokens: readonly number[],
    positions: readonly number[],
    cache: KvCache,
    logitRows: readonly number[],
    part: number,
    opts: ForwardOptions,
  ): Promise<ForwardResult> {
    const { numLayers: L, numKvHeads: KV, headDim: D } = this.config;
    const T = tokens.length;
    const work = cache.clone(T);
    const keys = Array.from({ length: L }, () => new Float32Array(KV * T * D)); // [KV, T, D] each
    const values = Array.from({ length: L }, () => new Float32Array(KV * T * D));
    let pasts: number[] = [];
    const logits = await this.runParts(tokens, positions, work, logitRows, part, opts, (out, s) => {
      const n = out.keys[0].length / (KV * D);
      if (s === 0) pasts = out.pasts;
      for (let l = 0; l < L; l++) {
        for (let h = 0; h < KV; h++) {
          keys[l].set(out.keys[l].subarray(h * n * D, (h + 1) * n * D), (h * T + s) * D);
          values[l].set(out.values[l].subarray(h * n * D, (h + 1) * n * D), (h * T + s) * D);
        }
      }
    });
    return { logits, keys, values, scores: null, pasts };
  }

  /**
   * Runs `tokens` in graph calls of `step` tokens over `cache`, appending each call's K/V to it, and
   * returns the logits of `logitRows`; `each` sees every call's result and where it starts.
   */
  private async runParts(
    tokens: readonly number[],
    positions: readonly number[],
    cache: KvCache,
    logitRows: readonly number[],
    step: number,
    opts: ForwardOptions,
    each?: (out: ForwardResult, start: number) => void,
  ): Promise<Float32Array> {
    const T = tokens.length;
    const V = this.config.vocabSize;
    if (T === 0) throw new EpicacheError("invalid_argument", "no tokens to run");
    for (const r of logitRows) {
      if (!Number.isInteger(r) || r < 0 || r >= T)
        throw new EpicacheError("invalid_argument", `logit row ${r} of ${T} tokens`);
    }
    const logits = new Float32Array(logitRows.length * V);
    for (let s = 0; s < T; s += step) {
      const e = Math.min(T, s + step);
      const here = logitRows.flatMap((r, i) => (r >= s && r < e ? [i] : []));
      const at = positions.slice(s, e);
      // A part with no requested row still computes one (the graph returns at least one).
      const out = await this.forwardOnce(
        tokens.slice(s, e),
        at,
        cache,
        here.length > 0 ? here.map((i) => logitRows[i] - s) : [e - s - 1],
        opts,
      );
      cache.append(out.keys, out.values, at);
      here.forEach((i, j) => logits.set(out.logits.subarray(j * V, (j + 1) * V), i * V));
      each?.(out, s);
    }
    return logits;
  }

  private async forwardOnce(
    tokens: readonly number[],
    positions: readonly number[],
    cache: KvCache,
    logitRows: readonly number[],
    opts: ForwardOptions,
  ): Promise<ForwardResult> {
    const c = this.config;
    const T = tokens.length;
    const span = opts.scoreSpan ?? 0;
    if (T === 0 || positions.length !== T)
      throw new EpicacheError(
        "invalid_argument",
        `forward: ${T} tokens with ${positions.length} positions`,
      );
    if (!Number.isInteger(span) || span < 0 || span > T)
      throw new EpicacheError(
        "invalid_argument",
        `forward: a scoring span of ${span} over ${T} tokens`,
      );
    for (const t of tokens) {
      if (!Number.isInteger(t) || t < 0 || t >= c.vocabSize)
        throw new EpicacheError("invalid_argument", `token id ${t} is outside the vocabulary`);
    }
    const lengths = new BigInt64Array(c.numLayers * c.numKvHeads);
    const rope = ropeTables(
      positions,
      c,
      this.numerics === "ggml" ? "ggml" : "exact",
      this.ropeLibm,
    );
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor("int64", BigInt64Array.from(tokens, BigInt), [T]),
      rope_cos: new ort.Tensor("float32", rope.cos, [T, c.headDim / 2]),
      rope_sin: new ort.Tensor("float32", rope.sin, [T, c.headDim / 2]),
      logits_index: new ort.Tensor("int64", BigInt64Array.from(logitRows, BigInt), [
        logitRows.length,
      ]),
      past_lengths: new ort.Tensor("int64", lengths, [c.numLayers, c.numKvHeads]),
      score_len: new ort.Tensor("int64", BigInt64Array.from([BigInt(span)]), [1]),
    };
    const pasts: number[] = [];
    const chunk =
      this.numerics === "ggml" ? 0 : (opts.attentionChunk ?? (T >= 16 ? ATTENTION_CHUNK : 0));
    if (!Number.isInteger(chunk) || chunk < 0)
      throw new EpicacheError("invalid_argument", `forward: attention chunk ${chunk}`);
    feeds.attn_chunk = new ort.Tensor("int64", BigInt64Array.from([BigInt(chunk)]), [1]);
    for (let l = 0; l < c.numLayers; l++) {
      const layer = cache.layers[l];
      for (let h = 0; h < c.numKvHeads; h++)
        lengths[l * c.numKvHeads + h] = BigInt(layer.lengths[h]);
      // ggml numerics need entry i at index i. Chunked attention visits only the filled chunks, so
      // the buffers go in whole, with no copy. Otherwise a buffer with little slack goes in whole
      // (padding is masked), and a roomy one is packed: all-at-once work grows with what it is given.
      const n = cache.layerLength(l);
      const layerPast =
        this.numerics === "ggml" || (chunk === 0 && layer.capacity > n * 1.25 + 64)
          ? cache.packed(l, this.numerics !== "ggml")
          : { keys: layer.keys, values: layer.values, length: layer.capacity };
      feeds[`past_key_${l}`] = new ort.Tensor("float32", layerPast.keys, [
        c.numKvHeads,
        layerPast.length,
        c.headDim,
      ]);
      feeds[`past_value_${l}`] = new ort.Tensor("float32", layerPast.values, [
        c.numKvHeads,
        layerPast.length,
        c.headDim,
      ]);
      pasts.push(layerPast.length);
    }
    const out = await this.session.run(feeds);
    const keys: Float32Array[] = [];
    const values: Float32Array[] = [];
    const scores: Float32Array[] = [];
    for (let l = 0; l < c.numLayers; l++) {
      keys.push(out[`present_key_${l}`].data as Float32Array);
      values.push(out[`present_value_${l}`].data as Float32Array);
      scores.push(out[`scores_${l}`].data as Float32Array);
    }
    return {
      logits: out.logits.data as Float32Array,
      keys,
      values,
      scores: span > 0 ? scores : null,
      pasts,
    };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

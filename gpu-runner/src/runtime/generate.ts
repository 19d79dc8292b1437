/**
 * Text generation over the decoder: prefill the prompt in chunks, then one token per step until
 * the token budget or an end-of-generation token.
 */
import { EpicacheError } from "@epicache/shared";
import { KvCache } from "./kv-cache";
import type { ChatModel } from "./load";
import { argmax, sampleWithTemperature, seededRandom } from "./sampling";

/**
 * Entries of room a generation's cache gets past its prompt, and grows by whenever it is full: the
 * buffers each decoding step reads then depend on the cache, the prompt and the tokens so far, not
 * on `maxTokens`, so an answer given more tokens begins as the shorter one did (in `fast` numerics a
 * buffer's length reaches the last bits of a step: README, "The runtime"). Most answers end within it;
 * a longer one copies the cache once per ANSWER_ROOM tokens, cheaper than reading more padding at
 * every step.
 */
export const ANSWER_ROOM = 64;

export interface GenerateOptions {
  maxTokens: number;
  /** 0 (default) is greedy. */
  temperature?: number;
  seed?: number;
  /** Tokens that end generation (not emitted); default: the tokenizer's EOS and end-of-turn. */
  stopIds?: ReadonlySet<number>;
  /** Prompt tokens per graph call while prefilling (default: `Decoder.prefill`'s). */
  prefillChunk?: number;
  /** Continue from this cache (it is extended in place). */
  cache?: KvCache;
  /**
   * Size `cache` as an answer's cache is sized (ANSWER_ROOM; the default). False: the caller sized it
   * once for many generations (each taken off again: KvCache.rewind), and it is left as it is
   * (appends grow it when full).
   */
  refit?: boolean;
}

export interface GeneratedToken {
  id: number;
  /** Text this token completes (may be empty while a UTF-8 character is incomplete). */
  text: string;
}

export async function* generate(
  model: ChatModel,
  prompt: readonly number[],
  opts: GenerateOptions,
): AsyncGenerator<GeneratedToken> {
  const { decoder, tokenizer, config } = model;
  if (prompt.length === 0) throw new EpicacheError("invalid_argument", "the prompt is empty");
  if (!Number.isInteger(opts.maxTokens) || opts.maxTokens < 0)
    throw new EpicacheError(
      "invalid_argument",
      `max tokens must be a non-negative integer, got ${opts.maxTokens}`,
    );
  const temperature = opts.temperature ?? 0;
  if (!(temperature >= 0))
    throw new EpicacheError("invalid_argument", `temperature must be ≥ 0, got ${temperature}`);
  const random = seededRandom(opts.seed ?? 0);
  const stops = opts.stopIds ?? tokenizer.stopIds;
  const cache = opts.cache ?? new KvCache(config);
  const V = config.vocabSize;
  const pick = (logits: Float32Array) =>
    temperature === 0
      ? argmax(logits, 0, V)
      : sampleWithTemperature(logits, temperature, random, 0, V);

  // Room for the prompt and ANSWER_ROOM tokens, and no more: decoding steps read what the buffers hold.
  const refit = opts.refit ?? true;
  if (refit) cache.fit(prompt.length + ANSWER_ROOM);
  const start = cache.nextPosition;
  let logits: Float32Array | undefined = await decoder.prefill(
    prompt,
    prompt.map((_, i) => start + i),
    cache,
    [prompt.length - 1],
    { part: opts.prefillChunk },
  );
  const text = tokenizer.streamDecoder();
  for (let n = 0; n < opts.maxTokens && logits; n++) {
    const id = pick(logits);
    if (stops.has(id)) return;
    yield { id, text: text(id) };
    if (n + 1 === opts.maxTokens) return;
    if (refit && cache.full) cache.fit(ANSWER_ROOM);
    const position = cache.nextPosition;
    const out = await decoder.forward([id], [position], cache, [0]);
    cache.append(out.keys, out.values, [position]);
    logits = out.logits;
  }
}

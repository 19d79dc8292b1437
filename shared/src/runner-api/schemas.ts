/**
 * The runner's HTTP API (docs/design.md §5), as zod schemas both sides use: the edge builds requests
 * from them, the runner validates with them. Ids are validated ids (store/ids.ts).
 */
import { z } from "zod";
import { ALLOC_MODES, BUILD_METHODS } from "../methods";
import { ROUTING_RULES } from "../conversation/route-question";
import { isValidId } from "../store/ids";

const id = (kind: string) =>
  z.string().refine(isValidId, {
    message: `${kind} id: 1 to 64 ASCII letters, digits, '_', '-' or '.', starting with a letter or digit, without '..'`,
  });

/**
 * Limits of request bodies' contents, and `bodyBytes`, the runner's default limit on a body
 * (`maxBodyBytes`, EPICACHE_RUNNER_MAX_BODY_BYTES): the edge caps a conversation's transcript so that
 * a full rebuild of it fits in one (its MAX_TRANSCRIPT_BYTES).
 */
export const RUNNER_LIMITS = {
  embedTexts: 256,
  textChars: 8192,
  messages: 50_000,
  messageChars: 20_000,
  questionChars: 4_000,
  maxTokens: 512,
  bodyBytes: 16 << 20,
} as const;

/**
 * `POST /v1/embed`.
 *
 * @example
 * ```ts
 * EmbedRequest.parse({ texts: ["When did Ann move?"] });
 * ```
 */
export const EmbedRequest = z
  .object({
    texts: z.array(z.string().max(RUNNER_LIMITS.textChars)).min(1).max(RUNNER_LIMITS.embedTexts),
  })
  .strict();
export type EmbedRequest = z.infer<typeof EmbedRequest>;

/**
 * The answer of `POST /v1/embed`: L2-normalised vectors.
 *
 * @example
 * ```ts
 * const { vectors } = EmbedResponse.parse(await res.json());
 * ```
 */
export const EmbedResponse = z.object({
  model: z.string(),
  dimension: z.number().int(),
  vectors: z.array(z.array(z.number())),
});
export type EmbedResponse = z.infer<typeof EmbedResponse>;

/**
 * One message of a transcript, as the edge stores it.
 *
 * @example
 * ```ts
 * TranscriptMessage.parse({ id: "m1", speaker: "Ann", text: "Hi!", session: "2024-05-07" });
 * ```
 */
export const TranscriptMessage = z
  .object({
    id: z.string().min(1).max(128).optional(),
    speaker: z.string().min(1).max(200),
    text: z.string().max(RUNNER_LIMITS.messageChars),
    timestamp: z.string().max(64).optional(),
    session: z.union([z.string().max(128), z.number().int()]).optional(),
  })
  .strict();
export type TranscriptMessage = z.infer<typeof TranscriptMessage>;

/**
 * How a rebuild builds: every field optional, the runner's defaults otherwise.
 *
 * @example
 * ```ts
 * BuildConfig.parse({ budget: 512, episodes: 4 });
 * ```
 */
export const BuildConfig = z
  .object({
    method: z.enum(BUILD_METHODS).optional(),
    episodes: z.number().int().min(1).max(64).optional(),
    budget: z
      .number()
      .int()
      .min(1)
      .max(1 << 20)
      .optional(),
    block: z.number().int().min(16).max(8192).optional(),
    /** Keep only the first sessions within this many tokens (default: the whole history). */
    maxContext: z
      .number()
      .int()
      .min(64)
      .max(1 << 22)
      .optional(),
    /**
     * Where kept entries sit: "compact" (default) keeps every attention inside the model's window
     * however long the history; "original" keeps history positions (beyond the window on long ones).
     */
    positions: z.enum(["compact", "original"]).optional(),
    /** How the budget is spread over layers (EpiCache); default the model's. */
    alloc: z.enum(ALLOC_MODES).optional(),
    /** Representative windows per episode: a count, or a share of its windows ("25%"). */
    nMedoid: z
      .union([
        z.number().int().min(1).max(1024),
        z
          .string()
          .regex(/^\d+(\.\d+)?%$/)
          .refine(
            (s) => Number(s.slice(0, -1)) > 0 && Number(s.slice(0, -1)) <= 100,
            "a percentage in (0, 100]",
          ),
      ])
      .optional(),
    dtype: z.enum(["f32", "f16", "int8"]).optional(),
    /** How questions are routed to the episodes (shared routeQuestion); default `lexical`. */
    routing: z.enum(ROUTING_RULES).optional(),
    /** With `routing: "vote"`, how many of the nearest windows vote; default 3. Ignored otherwise. */
    voteK: z.number().int().min(1).max(64).optional(),
  })
  .strict();
export type BuildConfig = z.infer<typeof BuildConfig>;

const windowVectors = z.string();
const windowEpisodes = z.array(z.number().int().min(0));

/**
 * How the edge routes questions to a built version, as a job's result carries it: the rule, and for
 * `window`, `vote` and `lexical` every window's vector (int8 in base64, the embedder's dimension each:
 * shared encodeWindowVectors) and its episode's index in the result's `episodes`; for `lexical` also
 * every window's terms (shared lexicalTerms) joined by single spaces, "" for a window without any.
 *
 * @example
 * ```ts
 * JobRouting.parse({ rule: "window", windowVectors: "X4F/AA==", windowEpisodes: [0, 1] });
 * JobRouting.parse({ rule: "lexical", windowVectors: "X4F/AA==", windowEpisodes: [0, 1], windowTerms: ["dog vet", "pottery class"] });
 * ```
 */
export const JobRouting = z.discriminatedUnion("rule", [
  z.object({ rule: z.literal("centroid") }),
  z.object({ rule: z.literal("window"), windowVectors, windowEpisodes }),
  z.object({ rule: z.literal("vote"), k: z.number().int().min(1), windowVectors, windowEpisodes }),
  z.object({
    rule: z.literal("lexical"),
    windowVectors,
    windowEpisodes,
    // What lexicalTerms gives, so that splitting on " " gives the terms back.
    windowTerms: z.array(
      z
        .string()
        .regex(
          /^(?:[a-z0-9]+(?: [a-z0-9]+)*)?$/,
          "terms: lower-case ASCII letters and digits, one space between terms",
        ),
    ),
  }),
]);
export type JobRouting = z.infer<typeof JobRouting>;

/**
 * `POST /v1/rebuild`: a transcript snapshot to build a version from, or (with `base`) the messages
 * after a stored version's last one, to update it. An update the runner cannot make (the base is
 * missing or was built otherwise, a new speaker, drift, growth) fails with `base_unusable`; the
 * sender then sends the whole transcript.
 *
 * @example
 * ```ts
 * RebuildRequest.parse({ tenant: "t1", conversation: "c1", version: "v2", messages, config: {}, callbackUrl: "https://edge/…" });
 * RebuildRequest.parse({ tenant: "t1", conversation: "c1", version: "v3", base: { version: "v2", lastMessageId: "m41" }, messages: newOnes });
 * ```
 */
export const RebuildRequest = z
  .object({
    tenant: id("tenant"),
    conversation: id("conversation"),
    version: id("version"),
    messages: z.array(TranscriptMessage).min(1).max(RUNNER_LIMITS.messages),
    /** The version these messages continue, and the id of its last message (checked against its manifest). */
    base: z
      .object({ version: id("version"), lastMessageId: z.string().min(1).max(128) })
      .strict()
      .optional(),
    config: BuildConfig.default({}),
    callbackUrl: z.url({ protocol: /^https?$/ }).optional(),
  })
  .strict();
export type RebuildRequest = z.infer<typeof RebuildRequest>;

/** How much of an episode's representative text a job's result carries (what the console shows of it). */
export const REPRESENTATIVE_CHARS = 2000;

/**
 * A rebuild job, as `GET /v1/jobs/{id}` shows it and the completion callback posts it.
 *
 * @example
 * ```ts
 * const job = JobStatus.parse(await (await fetch(`${runner}/v1/jobs/${id}`, { headers })).json());
 * if (job.status === "succeeded") use(job.result.episodes);
 * ```
 */
export const JobStatus = z.object({
  id: z.string(),
  tenant: z.string(),
  conversation: z.string(),
  version: z.string(),
  status: z.enum(["queued", "running", "succeeded", "failed"]),
  stage: z.string(),
  /** 0 … 100. */
  percent: z.number(),
  /** Seconds left, estimated; null when unknown. */
  etaSeconds: z.number().nullable(),
  createdAt: z.string(),
  finishedAt: z.string().nullable(),
  error: z.object({ code: z.string(), message: z.string() }).nullable(),
  result: z
    .object({
      version: z.string(),
      active: z.string(),
      manifestKey: z.string(),
      contextTokens: z.number(),
      episodes: z.array(
        z.object({
          id: z.number(),
          centroid: z.array(z.number()),
          bytes: z.number(),
          /** Entries the cache holds, and per layer over all KV heads (absent from older runners). */
          entries: z.number().int().min(0).optional(),
          layerEntries: z.array(z.number().int().min(0)).max(1024).optional(),
          /** The start of the episode's representative text (its patched prompt), at most REPRESENTATIVE_CHARS. */
          representative: z.string().max(REPRESENTATIVE_CHARS).optional(),
        }),
      ),
      embedder: z.object({ modelId: z.string(), dimension: z.number() }),
      /** Absent from runners before routing rules: their versions are routed by centroid. */
      routing: JobRouting.optional(),
      /** How the version was made (absent from runners before updates: full). */
      kind: z.enum(["full", "incremental"]).optional(),
      reason: z.string().optional(),
      baseVersion: z.string().nullable().optional(),
      /** The id of the version's last message: what the next update continues from. */
      lastMessageId: z.string().optional(),
    })
    .nullable(),
});
export type JobStatus = z.infer<typeof JobStatus>;

/**
 * `POST /v1/generate`: a question to one episode of one version.
 *
 * @example
 * ```ts
 * GenerateRequest.parse({ tenant: "t1", conversation: "c1", version: "v2", episode: 0, question: "Where?", stream: true });
 * ```
 */
export const GenerateRequest = z
  .object({
    tenant: id("tenant"),
    conversation: id("conversation"),
    version: id("version"),
    episode: z.number().int().min(0).max(9999),
    question: z
      .string()
      .min(1)
      .max(RUNNER_LIMITS.questionChars)
      .refine((q) => q.trim() !== "", { message: "the question is blank" }),
    maxTokens: z.number().int().min(1).max(RUNNER_LIMITS.maxTokens).default(64),
    stream: z.boolean().default(false),
    dateHint: z.boolean().default(false),
  })
  .strict();
export type GenerateRequest = z.input<typeof GenerateRequest>;

/**
 * The answer of a non-streamed `POST /v1/generate` (and the last SSE event, `done`, of a streamed one).
 *
 * @example
 * ```ts
 * const { answer, episode, version } = GenerateResponse.parse(await res.json());
 * ```
 */
export const GenerateResponse = z.object({
  answer: z.string(),
  tenant: z.string(),
  conversation: z.string(),
  version: z.string(),
  episode: z.number(),
  tokens: z.number(),
  /** Milliseconds waiting for the model, loading the cache, and generating. */
  timings: z.object({ queuedMs: z.number(), loadMs: z.number(), generateMs: z.number() }),
});
export type GenerateResponse = z.infer<typeof GenerateResponse>;

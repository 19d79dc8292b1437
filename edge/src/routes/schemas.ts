/** The API's request and response schemas (zod, with their OpenAPI names). */
import { z } from "@hono/zod-openapi";
import { isValidId, ROUTING_RULES, RUNNER_LIMITS } from "@epicache/shared";

const ID_RULE =
  "1 to 64 ASCII letters, digits, '_', '-' or '.', starting with a letter or digit, without '..'";

/** A tenant, conversation or version id. */
export const Id = z
  .string()
  .refine(isValidId, { message: `not a valid id: use ${ID_RULE}` })
  .openapi({ description: `An id: ${ID_RULE}.`, example: "conv-26" });

// A lone UTF-16 surrogate (legal in a JSON escape, not Unicode) is stored by D1 as invalid UTF-8 and
// read back as U+FFFD: refused, so that what is stored is what was sent (and distinct message ids
// stay distinct in the transcript a runner gets).
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const wellFormed = [
  (s: string) => !LONE_SURROGATE.test(s),
  { message: "not well-formed Unicode (a lone UTF-16 surrogate)" },
] as const;

/** Every error: `{error: {code, message, requestId}}`. */
export const ErrorBody = z
  .object({
    error: z.object({
      code: z.string().openapi({
        description: "A stable code (shared/src/errors.ts): match on it, not on the message.",
        example: "runner_unavailable",
      }),
      message: z.string().openapi({
        description:
          "What went wrong: for the tenant's own errors, specifically; for failures inside the service (5xx), the code's fixed text.",
        example: "no runner could answer; try again shortly",
      }),
      requestId: z.string().openapi({
        description:
          "The request's id, also in the `x-request-id` header: the service's logs of the request carry it.",
        example: "6f1c2e8a-3b5d-4c7e-9a10-2d4b6e8f0a1c",
      }),
    }),
  })
  .openapi("Error");

/** The error responses a route may give, for its OpenAPI entry. */
export function errorResponses(
  ...statuses: (400 | 401 | 403 | 404 | 409 | 413 | 429 | 502 | 503)[]
) {
  const description: Record<number, string> = {
    400: "Invalid request (`invalid_argument`, `invalid_json`)",
    401: "Missing or wrong credentials (`unauthorized`, `webhook_invalid`)",
    403: "A tenant limit (`limit_exceeded`)",
    404: "No such resource for this tenant (`not_found`)",
    409: "Conflict (`no_active_version`, `conversation_empty`)",
    413: "Too large (`payload_too_large`): a message, a request, or the conversation's transcript (MAX_TRANSCRIPT_BYTES)",
    429: "Too many requests this minute (`rate_limited`)",
    502: "A runner answered wrongly (`runner_invalid`)",
    503: "No runner answered (`runner_unavailable`), or the question could not be embedded (`embedder_unavailable`)",
  };
  const headers = {
    "x-request-id": {
      description: "The request's id (as in the body).",
      schema: { type: "string" as const },
    },
  };
  return Object.fromEntries(
    statuses.map((s) => [
      s,
      {
        description: description[s],
        headers,
        content: { "application/json": { schema: ErrorBody } },
      },
    ]),
  ) as Record<
    number,
    {
      description: string;
      headers: typeof headers;
      content: { "application/json": { schema: typeof ErrorBody } };
    }
  >;
}

export const CreateTenantRequest = z
  .object({
    name: z
      .string()
      .min(1)
      .max(200)
      .refine(...wellFormed)
      .openapi({ example: "Acme" }),
    limits: z
      .object({
        maxConversations: z.number().int().min(1).optional(),
        maxMessagesPerConversation: z
          .number()
          .int()
          .min(1)
          .max(RUNNER_LIMITS.messages)
          .optional()
          .openapi({
            description: `At most ${RUNNER_LIMITS.messages}, what a runner's rebuild takes.`,
          }),
        requestsPerMinute: z.number().int().min(1).optional(),
      })
      .strict()
      .optional()
      .openapi({ description: "The tenant's own limits; the Worker's defaults where not given." }),
  })
  .strict()
  .openapi("CreateTenantRequest");

export const CreateTenantResponse = z
  .object({
    tenantId: Id,
    apiKey: z
      .string()
      .openapi({ description: "Shown once: only its hash is stored.", example: "ek_…" }),
    webhookSecret: z.string().openapi({
      description: "Standard Webhooks secret for the tenant's rebuild webhooks; shown once.",
      example: "whsec_…",
    }),
  })
  .openapi("CreateTenantResponse");

export const MessageIn = z
  .object({
    id: z
      .string()
      .min(1)
      .max(128)
      .refine(...wellFormed)
      .openapi({
        description:
          "The client's id of the message: an append with ids already stored adds nothing for them.",
        example: "m-0001",
      }),
    speaker: z
      .string()
      .min(1)
      .max(200)
      .refine(...wellFormed)
      .openapi({ example: "Caroline" }),
    text: z
      .string()
      .refine(...wellFormed)
      .openapi({
        description: "At most MAX_MESSAGE_CHARS characters (413 otherwise).",
        example: "I went to the LGBTQ support group yesterday.",
      }),
    timestamp: z
      .string()
      .max(64)
      .refine(...wellFormed)
      .optional()
      .openapi({ example: "1:56 pm on 8 May, 2023" }),
    session: z
      .union([
        z
          .string()
          .max(128)
          .refine(...wellFormed),
        z.number().int(),
      ])
      .optional()
      .openapi({ example: 1 }),
  })
  .strict()
  .openapi("Message");

export const AppendMessagesRequest = z
  .object({
    messages: z.array(MessageIn).min(1).openapi({
      description: "At most MAX_MESSAGES_PER_REQUEST messages (413 otherwise), in order.",
    }),
  })
  .strict()
  .openapi("AppendMessagesRequest");

export const AppendMessagesResponse = z
  .object({
    appended: z.number().int().openapi({ description: "Messages added by this request." }),
    duplicates: z.number().int().openapi({
      description: "Messages whose ids the conversation already held (left as they were).",
    }),
    messageCount: z.number().int(),
  })
  .openapi("AppendMessagesResponse");

const Kind = z.enum(["full", "incremental"]).nullable().openapi({
  description:
    "`incremental`: `baseVersion` continued with the messages after its last one; `full`: built from the whole transcript. Null for a rebuild not yet sent (and versions stored before updates).",
});

export const ActiveVersion = z
  .object({
    version: z.string(),
    kind: Kind,
    reason: z.string().nullable().openapi({
      description:
        "Why this kind, e.g. `first build`, `the 12 messages after v…`, `no usable base: …`.",
    }),
    baseVersion: z.string().nullable(),
    messageCount: z
      .number()
      .int()
      .nullable()
      .openapi({ description: "The messages it was built from: the conversation's first ones." }),
  })
  .openapi("ActiveVersion");

export const RebuildState = z
  .object({
    version: z.string(),
    status: z.enum(["queued", "submitted", "succeeded", "failed"]),
    kind: Kind,
    reason: z.string().nullable(),
    baseVersion: z.string().nullable(),
    messageCount: z
      .number()
      .int()
      .nullable()
      .openapi({ description: "The messages the version holds once built (null until sent)." }),
    stage: z.string().nullable(),
    progress: z.number().nullable().openapi({ description: "Percent done, 0 to 100." }),
    etaSeconds: z.number().nullable(),
    error: z.object({ code: z.string(), message: z.string() }).nullable(),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi("RebuildState");

export const ConversationResponse = z
  .object({
    id: Id,
    messageCount: z.number().int(),
    activeVersion: z.string().nullable().openapi({
      description:
        "The version questions are answered from; null before the first rebuild succeeds.",
    }),
    active: ActiveVersion.nullable().openapi({
      description: "The active version: how it was built, and from how many messages.",
    }),
    rebuild: RebuildState.nullable().openapi({
      description: "The newest rebuild, whatever its status.",
    }),
    followUp: z.boolean().openapi({
      description:
        "A webhook came while the newest rebuild was queued or running: one more rebuild starts when it settles, if it does not hold every message.",
    }),
    transcriptBytes: z.number().int().openapi({
      description:
        "The transcript's size in a full rebuild's request, at most MAX_TRANSCRIPT_BYTES (appends beyond it are refused with 413).",
    }),
  })
  .openapi("Conversation");

/** A row of a conversation's version history: the rebuild's state, and what it built when it succeeded. */
export const VersionSummary = RebuildState.extend({
  active: z.boolean().openapi({ description: "True for the version questions are answered from." }),
  contextTokens: z.number().int().nullable().openapi({
    description: "Tokens of the history its caches were built over (null until it succeeded).",
  }),
  routing: z.enum(ROUTING_RULES).nullable().openapi({
    description: "How questions are routed to its episodes (null until it succeeded).",
  }),
  episodeCount: z
    .number()
    .int()
    .nullable()
    .openapi({ description: "Episodes built (null until it succeeded)." }),
}).openapi("VersionSummary");

export const VersionList = z
  .object({
    versions: z.array(VersionSummary).openapi({ description: "Newest first, at most 100." }),
    more: z
      .boolean()
      .openapi({ description: "True when the conversation has older versions than those listed." }),
  })
  .openapi("VersionList");

export const Episode = z
  .object({
    id: z
      .number()
      .int()
      .openapi({ description: "The episode's id: what an answer's `episode` names." }),
    windows: z.number().int().nullable().openapi({
      description:
        "How many windows of the conversation (of 4 messages) are in it. Null when the version routes by centroid, or is older than the version active before the current one (only those two keep their windows).",
    }),
    topTerms: z.array(z.string()).nullable().openapi({
      description:
        "Up to 8 terms (lower-case, stemmed: shared lexicalTerms; of 3 characters or more) most particular to its windows, by how many of them hold the term, weighted by how rare it is in the others; null unless the version routes by `lexical` and keeps its windows.",
    }),
    cacheBytes: z.number().int().nullable().openapi({
      description:
        "Bytes of its KV cache as the runner stored it; null for versions stored before the edge kept it.",
    }),
    entries: z.number().int().nullable().openapi({
      description:
        "Key-value entries its cache holds over all layers and KV heads; null for versions stored before the edge kept it.",
    }),
    layerEntries: z.array(z.number().int()).nullable().openapi({
      description:
        "Entries per layer over its KV heads, first layer first (the per-layer budgets set by each layer's sensitivity, where the history filled them); null for versions stored before the edge kept them.",
    }),
    representative: z.string().nullable().openapi({
      description:
        "The start (at most 2,000 characters) of its representative text: the windows nearest its centroid, which scored what its cache keeps; null for versions stored before the edge kept it.",
    }),
  })
  .openapi("Episode");

export const VersionDetail = VersionSummary.extend({
  episodes: z.array(Episode).nullable().openapi({
    description: "In the runner's order; null until the version succeeded.",
  }),
}).openapi("VersionDetail");

export const QueryRequest = z
  .object({
    question: z
      .string()
      .min(1)
      .max(4000)
      .refine((q) => q.trim() !== "", { message: "the question is blank" })
      .openapi({ example: "When did Caroline go to the LGBTQ support group?" }),
    maxTokens: z.number().int().min(1).max(512).optional(),
    stream: z.boolean().optional().openapi({
      description:
        "Answer as server-sent events: `meta` {episode, version}, `token` {text}…, then `done` (the JSON answer) or `error`.",
    }),
  })
  .strict()
  .openapi("QueryRequest");

/** How the question was routed: the rule that picked its episode, and each episode's score under it. */
export const QueryRouting = z
  .object({
    rule: z.enum(ROUTING_RULES).openapi({
      description:
        "The rule whose scores these are: the version's, except `window` when `lexical` found none of the question's words in the conversation.",
    }),
    scores: z.array(z.object({ episode: z.number().int(), score: z.number().nullable() })).openapi({
      description:
        "Per episode, in the version's order: `centroid`, the question's cosine with its centroid; `window`, the best cosine of one of its windows; `vote`, its votes among the nearest windows; `lexical`, the best BM25 score of one of its windows. Null for an episode the rule cannot score (no windows). The chosen episode has the highest.",
    }),
  })
  .openapi("QueryRouting");

export const QueryResponse = z
  .object({
    answer: z.string(),
    episode: z.number().int().openapi({ description: "The episode the question was routed to." }),
    version: z.string(),
    tokens: z.number().int(),
    routing: QueryRouting,
  })
  .openapi("QueryResponse");

export const RebuildWebhookRequest = z
  .object({ conversationId: Id })
  .strict()
  .openapi("RebuildWebhookRequest");

export const RebuildWebhookResponse = z
  .object({
    conversationId: Id,
    version: z.string(),
    status: z.string(),
    duplicate: z.boolean().openapi({
      description: "True when this webhook-id was already received: nothing new was enqueued.",
    }),
    followUp: z.boolean().openapi({
      description:
        "True when a rebuild (`version`) was already queued or running: one follow-up rebuild with the newest messages starts when it settles (one for any number of such webhooks).",
    }),
  })
  .openapi("RebuildWebhookResponse");

// The data of a streamed answer's server-sent events (`stream: true`). OpenAPI 3.1 cannot say which
// events a `text/event-stream` carries, so these are components of their own, named by the route's
// description; a client parses each event's `data` as the one its `event` names.

export const QueryStreamMeta = z
  .object({
    episode: z.number().int().openapi({ description: "The episode the question was routed to." }),
    version: z.string(),
    routing: QueryRouting,
  })
  .openapi("QueryStreamMeta", { description: "The data of the first event, `meta`." });

export const QueryStreamToken = z
  .object({ text: z.string().openapi({ description: "The next piece of the answer." }) })
  .openapi("QueryStreamToken", {
    description: "The data of a `token` event, one per piece of the answer as it is generated.",
  });

export const QueryStreamDone = QueryResponse.extend({
  timings: z.object({ queuedMs: z.number(), loadMs: z.number(), generateMs: z.number() }).openapi({
    description:
      "Milliseconds the runner waited for the model, loaded the episode's cache, and generated.",
  }),
}).openapi("QueryStreamDone", {
  description:
    "The data of the last event, `done`: the whole answer (the stream's other ending is an `error` event, whose data is an `Error`).",
});

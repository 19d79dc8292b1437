/**
 * The runner's routes as `@hono/zod-openapi` definitions: the request and response schemas are the
 * runner API's (shared/src/runner-api/schemas.ts), which validate the request and make the OpenAPI
 * document at `GET /openapi.json`. The handlers are in app.ts.
 */
import { createRoute, z } from "@hono/zod-openapi";
import {
  EmbedRequest,
  EmbedResponse,
  ERROR_CODES,
  GenerateRequest,
  GenerateResponse,
  JobStatus,
  RebuildRequest,
} from "@epicache/shared";

// Named, so that the document refers to them as components. Cloned: `.openapi` is on the schemas
// zod makes after @hono/zod-openapi extends it, and shared's may have been made before.
const schemas = {
  EmbedRequest: EmbedRequest.clone().openapi("EmbedRequest"),
  EmbedResponse: EmbedResponse.clone().openapi("EmbedResponse"),
  RebuildRequest: RebuildRequest.clone().openapi("RebuildRequest"),
  JobStatus: JobStatus.clone().openapi("JobStatus"),
  GenerateRequest: GenerateRequest.clone().openapi("GenerateRequest"),
  GenerateResponse: GenerateResponse.clone().openapi("GenerateResponse"),
};

/** Every error: `{error: {code, message, requestId}}`, the request id also in `x-request-id`. */
export const ErrorBody = z
  .object({
    error: z.object({
      code: z
        .enum(
          Object.keys(ERROR_CODES) as [keyof typeof ERROR_CODES, ...(keyof typeof ERROR_CODES)[]],
        )
        .openapi({
          description: "A stable code (shared/src/errors.ts); its HTTP status is the response's.",
        }),
      message: z.string().openapi({
        description:
          "What was wrong with the request; for a 5xx, the code's fixed text (the exception is logged under the request id).",
      }),
      requestId: z.string().openapi({
        description: "The edge's `x-request-id`, else the signed request's id, else a new one.",
      }),
    }),
  })
  .openapi("Error");

const ERROR_DESCRIPTIONS = {
  400: "A body that is not JSON (`invalid_json`) or does not follow the schema (`invalid_argument`, naming the first issues)",
  401: "Unsigned, forged, stale or replayed (`unauthorized`)",
  404: "No such job (`not_found`) or stored version (`store_not_found`)",
  409: "The version was built with another model (`model_mismatch`)",
  422: "The version's stored caches could not be read (`store_invalid`)",
  413: "A body over `maxBodyBytes` (`payload_too_large`)",
  415: "A body that is not `application/json` (`unsupported_media_type`)",
  500: "A failure inside the runner (`internal`): the fixed text; the exception is in the log",
  503: "The rebuild queue is full (`queue_full`), or the store did not answer (`store_unavailable`)",
} as const;

function errors(...statuses: (keyof typeof ERROR_DESCRIPTIONS)[]) {
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
        description: ERROR_DESCRIPTIONS[s],
        headers,
        content: { "application/json": { schema: ErrorBody } },
      },
    ]),
  );
}

/** What every signed route may answer besides its own errors. */
const signed = [400, 401, 413, 415, 500] as const;
const json = <T extends z.ZodType>(schema: T) => ({
  required: true,
  content: { "application/json": { schema } },
});

export const healthRoute = createRoute({
  method: "get",
  path: "/healthz",
  tags: ["operations"],
  summary: "Liveness, the model's fingerprint, the embedder and the queue depth (unsigned)",
  responses: {
    200: {
      description: "Alive",
      content: {
        "application/json": {
          schema: z
            .object({
              ok: z.literal(true),
              model: z.string().openapi({ description: "The chat model's fingerprint." }),
              embedder: z.string(),
              queueDepth: z.number().int(),
            })
            .openapi("Health"),
        },
      },
    },
  },
});

export const metricsRoute = createRoute({
  method: "get",
  path: "/metrics",
  tags: ["operations"],
  summary: "Prometheus metrics (unsigned)",
  responses: {
    200: {
      description: "The Prometheus text format",
      content: { "text/plain": { schema: z.string() } },
    },
  },
});

export const embedRoute = createRoute({
  method: "post",
  path: "/v1/embed",
  tags: ["runner"],
  summary: "Embed texts: L2-normalised vectors, with the model id and dimension",
  request: { body: json(schemas.EmbedRequest) },
  responses: {
    200: {
      description: "The vectors",
      content: { "application/json": { schema: schemas.EmbedResponse } },
    },
    ...errors(...signed),
  },
});

export const rebuildRoute = createRoute({
  method: "post",
  path: "/v1/rebuild",
  tags: ["runner"],
  summary:
    "Queue a rebuild of a version (or, with `base`, an update of one); the finished job is posted to `callbackUrl`, signed",
  request: { body: json(schemas.RebuildRequest) },
  responses: {
    202: {
      description: "The queued job",
      content: { "application/json": { schema: schemas.JobStatus } },
    },
    ...errors(...signed, 503),
  },
});

export const jobRoute = createRoute({
  method: "get",
  path: "/v1/jobs/{id}",
  tags: ["runner"],
  summary: "A rebuild job's status, stage, progress, error and result",
  request: {
    params: z.object({
      id: z.string().openapi({
        param: { name: "id", in: "path" },
        description: "The id `POST /v1/rebuild` answered.",
      }),
    }),
  },
  responses: {
    200: { description: "The job", content: { "application/json": { schema: schemas.JobStatus } } },
    ...errors(401, 404, 500),
  },
});

export const generateRoute = createRoute({
  method: "post",
  path: "/v1/generate",
  tags: ["runner"],
  summary: "Answer a question from one episode of a version",
  description:
    "As JSON, or with `stream: true` as server-sent events: `token` events (data `{text}`), then `done` (data: the JSON answer) or `error` (data: `Error`).",
  request: { body: json(schemas.GenerateRequest) },
  responses: {
    200: {
      description: "The answer",
      content: {
        "application/json": { schema: schemas.GenerateResponse },
        "text/event-stream": {
          schema: z.string().openapi({
            description: "Server-sent events (stream: true): `token`…, then `done` or `error`.",
          }),
        },
      },
    },
    ...errors(...signed, 404, 409, 422, 503),
  },
});

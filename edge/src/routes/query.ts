/**
 * `POST /v1/conversations/{id}/query`: a question answered from the conversation's active version.
 * The question goes to an episode by the rule the active version records (shared routeQuestion: the
 * episode of the window best matching the question's words by BM25, else of the nearest window; the
 * nearest window's episode; a vote of the nearest windows; or the nearest centroid; versions stored
 * before routing rules route by centroid), on the runner that rendezvous hashing of (tenant,
 * conversation, episode) picks, or the next one if it fails;
 * the answer comes back as JSON or as server-sent events, with the episode and version.
 */
import { OpenAPIHono, createRoute, z } from "@hono/zod-openapi";
import {
  EpicacheError,
  GenerateResponse,
  rendezvousKey,
  rendezvousOrder,
  routeQuestion,
} from "@epicache/shared";
import { requireTenant } from "../auth";
import { getConversation } from "../db/conversations";
import type { AppEnv } from "../env";
import { activeManifest, embedQuestion } from "../questions";
import { answerEvents } from "../questions/answer-events";
import { callFirstAnswering, invalidAnswer, parseJson, runnerError } from "../runner/runner-client";
import {
  Id,
  QueryRequest,
  QueryResponse,
  QueryStreamDone,
  QueryStreamMeta,
  QueryStreamToken,
  errorResponses,
} from "./schemas";

const route = createRoute({
  method: "post",
  path: "/v1/conversations/{id}/query",
  tags: ["conversations"],
  summary: "Ask a question about a conversation",
  description:
    "Answered from the active version's episode that its routing rule picks (by default the episode of the conversation window that best matches the question's words by BM25, or of the window nearest the question by embedding when none of its words occurs in the conversation). With `stream: true` the answer is server-sent events, each with JSON data: `meta` (`QueryStreamMeta`: episode, version, routing), then the runner's `token` events (`QueryStreamToken`: text) and a final `done` (`QueryStreamDone`: the answer, episode, version, tokens, timings) or `error` (`Error`: `{error: {code, message, requestId}}`). 409 `no_active_version` before the first rebuild has succeeded.",
  security: [{ apiKey: [] }],
  middleware: [requireTenant] as const,
  request: {
    params: z.object({ id: Id.openapi({ param: { name: "id", in: "path" } }) }),
    body: { required: true, content: { "application/json": { schema: QueryRequest } } },
  },
  responses: {
    200: {
      description: "The answer",
      content: {
        "application/json": { schema: QueryResponse },
        "text/event-stream": {
          schema: z.string().openapi({
            description:
              "Server-sent events (stream: true): `meta`, `token`…, then `done` or `error`; their data are the components QueryStreamMeta, QueryStreamToken, QueryStreamDone and Error.",
          }),
        },
      },
    },
    ...errorResponses(400, 401, 404, 409, 429, 502, 503),
  },
});

/**
 * The question route.
 *
 * @example
 * ```sh
 * curl -s -X POST http://127.0.0.1:8787/v1/conversations/conv-26/query -H "authorization: Bearer $API_KEY" \
 *   -H 'content-type: application/json' -d '{"question": "What did Caroline research?"}'
 * # {"answer":"Adoption agencies.","episode":1,"version":"v2026…","tokens":5}
 * curl -N -X POST …/query -d '{"question": "What did Caroline research?", "stream": true}'
 * # event: meta / data: {"episode":1,"version":"v2026…"}, then event: token …, event: done …
 * ```
 */
export const queryRoutes = new OpenAPIHono<AppEnv>().openapi(route, async (c) => {
  const tenant = c.var.tenant;
  const config = c.var.config;
  const { id } = c.req.valid("param");
  const { question, maxTokens, stream } = c.req.valid("json");
  const conversation = await getConversation(c.env.DB, tenant.id, id);
  if (conversation === null) throw new EpicacheError("not_found", `no conversation ${id}`);
  if (conversation.activeVersion === null) {
    throw new EpicacheError(
      "no_active_version",
      `conversation ${id} has no active version yet: send a rebuild webhook and wait for it to succeed`,
    );
  }
  const manifest = await activeManifest(c.env.DB, tenant.id, id, conversation.activeVersion);
  const requestId = c.var.requestId;
  const vector = await embedQuestion(
    c.env.AI,
    config,
    manifest,
    question,
    tenant.id,
    id,
    requestId,
  );
  const routed = routeQuestion(manifest.rule, { vector, text: question }, manifest.data);
  const episode = manifest.episodeIds[routed.episode];
  // JSON has no −Infinity (an episode the rule cannot score): null.
  const routing = {
    rule: routed.scoredBy,
    scores: routed.scores.map((score, i) => ({
      episode: manifest.episodeIds[i],
      score: Number.isFinite(score) ? score : null,
    })),
  };
  const runners = rendezvousOrder(rendezvousKey(tenant.id, id, episode), config.runnerUrls);
  const { runner, response } = await callFirstAnswering(config, runners, {
    method: "POST",
    path: "/v1/generate",
    body: {
      tenant: tenant.id,
      conversation: id,
      version: manifest.version,
      episode,
      question,
      maxTokens,
      stream: stream === true,
    },
    requestId,
  });
  if (!response.ok) throw await runnerError(response, runner, "POST /v1/generate");
  if (stream === true) {
    const type = response.headers.get("content-type") ?? "";
    if (response.body === null || !type.startsWith("text/event-stream")) {
      throw invalidAnswer(
        runner,
        "POST /v1/generate (stream)",
        `a ${type || "bodiless"} answer instead of server-sent events`,
        await response.text().catch(() => ""),
      );
    }
    return c.body(
      answerEvents(
        response.body,
        { episode, version: manifest.version, routing },
        { requestId, runner },
      ),
      200,
      { "content-type": "text/event-stream", "cache-control": "no-cache" },
    );
  }
  const text = await response.text().catch(() => "");
  const answer = GenerateResponse.safeParse(parseJson(text));
  if (!answer.success) throw invalidAnswer(runner, "POST /v1/generate", "not an answer", text);
  return c.json(
    {
      answer: answer.data.answer,
      episode,
      version: manifest.version,
      tokens: answer.data.tokens,
      routing,
    },
    200,
  );
});

// The streamed events' data are in no route's schema (a text/event-stream body is text): registered
// as components, so that the document (and the client's types generated from it) names them.
for (const [name, schema] of [
  ["QueryStreamMeta", QueryStreamMeta],
  ["QueryStreamToken", QueryStreamToken],
  ["QueryStreamDone", QueryStreamDone],
] as const) {
  queryRoutes.openAPIRegistry.register(name, schema);
}

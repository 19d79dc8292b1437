/**
 * A conversation's versions, read-only (for the console, and any client that shows them):
 * `GET /v1/conversations/{id}/versions` (the history of its rebuilds, newest first) and
 * `GET /v1/conversations/{id}/versions/{version}` (one version with its episodes). Every lookup is by
 * (tenant of the API key, id): another tenant's conversation is a 404.
 */
import { OpenAPIHono, createRoute, z } from "@hono/zod-openapi";
import { EpicacheError } from "@epicache/shared";
import { requireTenant } from "../auth";
import { getConversation } from "../db/conversations";
import { listVersions, versionDetail } from "../db/version-history";
import type { AppEnv } from "../env";
import { Id, VersionDetail, VersionList, errorResponses } from "./schemas";

const id = Id.openapi({ param: { name: "id", in: "path" } });

const listRoute = createRoute({
  method: "get",
  path: "/v1/conversations/{id}/versions",
  tags: ["conversations"],
  summary:
    "The conversation's versions, newest first: each rebuild's status, kind and progress, and what it built",
  security: [{ apiKey: [] }],
  middleware: [requireTenant] as const,
  request: { params: z.object({ id }) },
  responses: {
    200: {
      description: "The newest 100 versions",
      content: { "application/json": { schema: VersionList } },
    },
    ...errorResponses(400, 401, 404, 429),
  },
});

const detailRoute = createRoute({
  method: "get",
  path: "/v1/conversations/{id}/versions/{version}",
  tags: ["conversations"],
  summary: "One version of the conversation, with its episodes once it succeeded",
  description:
    "Per episode: its id (what an answer's `episode` names), how many windows are in it, the terms most particular to them (`lexical` versions), its cache's bytes and entries (in all and per layer), " +
    "and the start of its representative text, as far as the edge keeps them (see `Episode`).",
  security: [{ apiKey: [] }],
  middleware: [requireTenant] as const,
  request: {
    params: z.object({
      id,
      version: Id.openapi({
        param: { name: "version", in: "path" },
        example: "v20260101T000000000Z-a1b2c3",
      }),
    }),
  },
  responses: {
    200: { description: "The version", content: { "application/json": { schema: VersionDetail } } },
    ...errorResponses(400, 401, 404, 429),
  },
});

/**
 * The version routes.
 *
 * @example
 * ```sh
 * curl -s http://127.0.0.1:8787/v1/conversations/conv-26/versions -H "authorization: Bearer $API_KEY"
 * # {"versions":[{"version":"v2026…","status":"succeeded","active":true,"kind":"full","episodeCount":4,…}],"more":false}
 * curl -s http://127.0.0.1:8787/v1/conversations/conv-26/versions/v2026… -H "authorization: Bearer $API_KEY"
 * # {…, "episodes":[{"id":0,"windows":12,"topTerms":["pottery","class",…],"cacheBytes":2359296,"entries":30720,"layerEntries":[…],"representative":"Caroline: …"}, …]}
 * ```
 */
export const versionRoutes = new OpenAPIHono<AppEnv>()
  .openapi(listRoute, async (c) => {
    const tenant = c.var.tenant;
    const { id } = c.req.valid("param");
    if ((await getConversation(c.env.DB, tenant.id, id)) === null)
      throw new EpicacheError("not_found", `no conversation ${id}`);
    return c.json(await listVersions(c.env.DB, tenant.id, id), 200);
  })
  .openapi(detailRoute, async (c) => {
    const tenant = c.var.tenant;
    const { id, version } = c.req.valid("param");
    const detail = await versionDetail(c.env.DB, tenant.id, id, version);
    if (detail === null) {
      const known = (await getConversation(c.env.DB, tenant.id, id)) !== null;
      throw new EpicacheError(
        "not_found",
        known ? `no version ${version} of conversation ${id}` : `no conversation ${id}`,
      );
    }
    return c.json(detail, 200);
  });

import { describe, expect, it } from "vitest";
import { call } from "../testing/helpers";

describe("GET /openapi.json", () => {
  it("documents every route from its definition, with schemas and error responses", async () => {
    const res = await call("GET", "/openapi.json");
    expect(res.status).toBe(200);
    const doc = (await res.json()) as {
      openapi: string;
      paths: Record<
        string,
        Record<
          string,
          { responses: Record<string, unknown>; requestBody?: unknown; security?: unknown }
        >
      >;
      components: { schemas: Record<string, unknown>; securitySchemes: Record<string, unknown> };
    };
    expect(doc.openapi).toBe("3.1.0");
    expect(Object.keys(doc.paths).sort()).toEqual([
      "/healthz",
      "/v1/conversations/{id}",
      "/v1/conversations/{id}/messages",
      "/v1/conversations/{id}/query",
      "/v1/conversations/{id}/versions",
      "/v1/conversations/{id}/versions/{version}",
      "/v1/internal/rebuild-callback",
      "/v1/tenants",
      "/v1/webhooks/{tenantId}/rebuild",
    ]);
    const query = doc.paths["/v1/conversations/{id}/query"].post;
    expect(Object.keys(query.responses)).toEqual(
      expect.arrayContaining(["200", "400", "401", "404", "409", "503"]),
    );
    expect(query.security).toEqual([{ apiKey: [] }]);
    expect(Object.keys(doc.components.schemas)).toEqual(
      expect.arrayContaining([
        "Error",
        "Message",
        "QueryRequest",
        "QueryResponse",
        "Conversation",
        "RebuildWebhookRequest",
        "CreateTenantRequest",
      ]),
    );
    expect(Object.keys(doc.components.securitySchemes).sort()).toEqual(["adminToken", "apiKey"]);
    // Every error names its request id, in the body and the x-request-id header.
    expect(doc.components.schemas.Error).toMatchObject({
      properties: {
        error: {
          properties: { code: {}, message: {}, requestId: {} },
          required: ["code", "message", "requestId"],
        },
      },
    });
    expect(query.responses["503"]).toMatchObject({ headers: { "x-request-id": {} } });
  });

  it("documents how the active version and the newest rebuild are built, and follow-ups", async () => {
    const doc = (await (await call("GET", "/openapi.json")).json()) as {
      components: {
        schemas: Record<
          string,
          { properties: Record<string, { $ref?: string; enum?: unknown[] }>; required: string[] }
        >;
      };
    };
    const { Conversation, RebuildState, ActiveVersion, RebuildWebhookResponse } =
      doc.components.schemas;
    expect(Conversation.properties).toMatchObject({
      active: { $ref: "#/components/schemas/ActiveVersion" },
      rebuild: { $ref: "#/components/schemas/RebuildState" },
      followUp: {},
      transcriptBytes: {},
    });
    for (const schema of [RebuildState, ActiveVersion]) {
      expect(schema.properties.kind.enum).toEqual(["full", "incremental", null]);
      expect(schema.required).toEqual(
        expect.arrayContaining(["version", "kind", "reason", "baseVersion", "messageCount"]),
      );
    }
    expect(RebuildState.required).toContain("status");
    expect(RebuildWebhookResponse.required).toContain("followUp");
  });

  it("names the data of a streamed answer's events", async () => {
    const doc = (await (await call("GET", "/openapi.json")).json()) as {
      components: {
        schemas: Record<
          string,
          { properties?: Record<string, unknown>; required?: string[]; allOf?: unknown[] }
        >;
      };
    };
    const { QueryStreamMeta, QueryStreamToken, QueryStreamDone } = doc.components.schemas;
    expect(QueryStreamMeta).toMatchObject({ required: ["episode", "version", "routing"] });
    expect(QueryStreamToken).toMatchObject({ required: ["text"] });
    // `done` is the JSON answer and the runner's timings.
    expect(QueryStreamDone.allOf).toEqual([
      { $ref: "#/components/schemas/QueryResponse" },
      expect.objectContaining({ required: ["timings"] }),
    ]);
  });
});

/**
 * The committed client types are those of the edge's current routes: generated again in memory from
 * the OpenAPI document edge/scripts/openapi.ts prints, and compared with client/src/generated/api.ts.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { GENERATE_COMMAND, GENERATED_FILE, edgeOpenApiDocument, generateTypes } from "./generate";

describe("client/src/generated/api.ts", () => {
  it("is what the edge's OpenAPI document generates", { timeout: 60_000 }, async () => {
    const document = await edgeOpenApiDocument();
    expect(document.openapi).toBe("3.1.0");
    expect(Object.keys(document.paths ?? {})).toContain("/v1/conversations/{id}/query");
    const expected = await generateTypes(document);
    const committed = readFileSync(GENERATED_FILE, "utf8");
    expect(
      committed,
      `client/src/generated/api.ts differs from the edge's routes: run \`${GENERATE_COMMAND}\` and commit it`,
    ).toBe(expected);
  });
});

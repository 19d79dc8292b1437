/**
 * Prints the edge's OpenAPI document, as `GET /openapi.json` serves it, without a server or any
 * binding: the document is made from the route definitions alone (createApp, asked in memory).
 * It runs under Node (tsx); the client's type generator (client/scripts/generate.ts) runs it in a
 * process of its own, so that nothing of the edge is imported into Node-side code.
 *
 * @example
 * ```sh
 * npm run -w edge openapi > /tmp/openapi.json
 * ```
 */
import { createApp } from "../src/app";

const res = await createApp().request("/openapi.json");
if (res.status !== 200)
  throw new Error(`GET /openapi.json answered ${res.status}: ${await res.text()}`);
console.log(JSON.stringify(await res.json(), null, 2));

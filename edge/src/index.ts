/**
 * The edge: the public HTTP API of Epicache, a Hono app on Cloudflare Workers (DESIGN.md §2, §5).
 * `fetch` serves the API; `queue` consumes rebuild jobs.
 */
import { createApp } from "./app";
import { consumeRebuilds } from "./queue/rebuild-consumer";

const app = createApp();

export default {
  fetch: app.fetch,
  queue: consumeRebuilds,
} satisfies ExportedHandler<Env>;

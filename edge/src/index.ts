/**
 * The edge: the public HTTP API of Epicache, a Hono app on Cloudflare Workers (docs/design.md §2, §5).
 * `fetch` serves the API; `queue` consumes rebuild jobs; `scheduled` polls rebuilds whose completion
 * callback has not arrived.
 */
import { createApp } from "./app";
import { consumeRebuilds } from "./queue/rebuild-consumer";
import { pollSubmitted } from "./rebuild/poll-submitted";

const app = createApp();

export default {
  fetch: app.fetch,
  queue: consumeRebuilds,
  scheduled: async (_controller, env, ctx) => {
    ctx.waitUntil(pollSubmitted(env));
  },
} satisfies ExportedHandler<Env>;

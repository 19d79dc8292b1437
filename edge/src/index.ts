/**
 * The edge: the public HTTP API of Epicache, a Hono app on Cloudflare Workers (docs/design.md §2, §5).
 * `fetch` serves the API; `queue` consumes rebuild jobs; `scheduled` polls rebuilds whose completion
 * callback has not arrived and forgets webhook deliveries older than any retry.
 */
import { createApp } from "./app";
import { pruneDeliveries } from "./db/deliveries";
import { consumeRebuilds, pollSubmitted } from "./rebuild";

const app = createApp();

export default {
  fetch: app.fetch,
  queue: consumeRebuilds,
  scheduled: async (_controller, env, ctx) => {
    ctx.waitUntil(Promise.all([pollSubmitted(env), pruneDeliveries(env.DB, Date.now() / 1000)]));
  },
} satisfies ExportedHandler<Env>;

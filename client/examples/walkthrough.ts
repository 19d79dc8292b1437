/**
 * The README's walkthrough ("The edge and the whole stack"), against `npm start` in another
 * terminal: a tenant, a conversation (the committed three-session chat), a rebuild webhook and its
 * progress, then two questions, the second streamed.
 *
 * @example
 * ```sh
 * npx tsx client/examples/walkthrough.ts    # EDGE=… and EPICACHE_ADMIN_TOKEN=… if not the defaults
 * ```
 */
import { readFileSync } from "node:fs";
import { EpicacheClient, type Message } from "@epicache/client";

const baseUrl = process.env.EDGE ?? "http://127.0.0.1:8787";
const adminToken =
  process.env.EPICACHE_ADMIN_TOKEN ?? readFileSync(".epicache/admin-token", "utf8").trim();

const { tenantId, apiKey, webhookSecret } = await new EpicacheClient({
  baseUrl,
  adminToken,
}).createTenant("acme");
console.log(`tenant ${tenantId}, API key ${apiKey}`);
const client = new EpicacheClient({ baseUrl, apiKey });

const messages = readFileSync("test/fixtures/conversation-excerpt.jsonl", "utf8")
  .trim()
  .split("\n")
  .map((line) => JSON.parse(line) as Message);
console.log(await client.appendMessages("maya-tom", messages)); // { appended: 30, duplicates: 0, messageCount: 30 }

// A rebuild: a Standard Webhook signed with the tenant's whsec_ secret; then its progress until the version is active.
const { version } = await client.triggerRebuild(tenantId, webhookSecret, "maya-tom");
const built = await client.waitForRebuild("maya-tom", {
  version,
  onProgress: (r) =>
    console.log(
      `${r.version} ${r.status} ${r.stage ?? ""} ${r.progress ?? 0}% ETA ${r.etaSeconds ?? "?"} s`,
    ),
});
console.log(
  `active: ${built.activeVersion} (${built.active?.kind} of ${built.active?.messageCount} messages)`,
);

console.log(await client.ask("maya-tom", { question: "What class did Maya sign up for?" })); // { answer, episode, version, tokens }
for await (const event of client.askStream("maya-tom", {
  question: "Which race is Tom training for?",
})) {
  if (event.event === "meta") process.stdout.write(`episode ${event.data.episode}: `);
  if (event.event === "token") process.stdout.write(event.data.text);
  if (event.event === "done")
    process.stdout.write(
      `\n(${event.data.tokens} tokens in ${event.data.timings.generateMs} ms)\n`,
    );
}

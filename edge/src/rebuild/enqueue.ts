/**
 * A tenant's rebuild request (a verified webhook, routes/webhooks.ts) becoming a queued rebuild. A
 * conversation has at most one rebuild queued or running: a request enqueues one when none is, and
 * else is folded into one follow-up rebuild that starts when the running one settles (settle.ts); a
 * conversation whose active version holds every message has nothing to build. A redelivery (same
 * `webhook-id`) is answered with the same version and enqueues nothing.
 */
import { EpicacheError, newVersionId } from "@epicache/shared";
import { getConversation } from "../db/conversations";
import {
  deleteDelivery,
  findDelivery,
  namedByDelivery,
  recordDelivery,
  type DeliveryNamed,
} from "../db/deliveries";
import { getVersion, requestRebuild, WEBHOOK_VERSION_SQL } from "../db/versions";
import type { RebuildJob } from "./rebuild-job";
import { failRebuild, type RebuildEnv } from "./settle";

/**
 * What became of a request: `enqueued` (a new rebuild, `version`), `folded` into the follow-up of
 * the rebuild in flight (`version`), `current` (nothing to build: `version` is the active one, which
 * holds every message), or a `duplicate` of a delivery already received (what it was answered with).
 */
export interface RebuildRequested {
  outcome: "enqueued" | "folded" | "current" | "duplicate";
  conversationId: string;
  version: string;
  status: string;
  /** A follow-up rebuild is due after `version`. */
  followUp: boolean;
}

/** The delivery `webhookId` as it was answered, or null when it is new. */
async function earlierDelivery(
  db: D1Database,
  tenantId: string,
  webhookId: string,
): Promise<RebuildRequested | null> {
  const seen = await findDelivery(db, tenantId, webhookId);
  if (seen === null) return null;
  const record = await getVersion(db, tenantId, seen.conversationId, seen.version);
  const followUp = (await getConversation(db, tenantId, seen.conversationId))?.followUp ?? false;
  return {
    outcome: "duplicate",
    conversationId: seen.conversationId,
    version: seen.version,
    status: record?.status ?? "queued",
    followUp,
  };
}

/**
 * Takes the rebuild request `webhookId` of the tenant's conversation: enqueues a rebuild, folds it
 * into the follow-up of the one in flight, or finds nothing to build. `not_found` for an unknown
 * conversation, `conversation_empty` for one without messages, `internal` when the queue refuses
 * the job (the delivery is forgotten then, so that the sender's retry is not taken for a duplicate).
 *
 * @example
 * ```ts
 * const r = await acceptRebuildRequest(c.env, tenant.id, "conv-26", webhookId);
 * // { outcome: "enqueued", conversationId: "conv-26", version: "v2026…", status: "queued", followUp: false }
 * ```
 */
export async function acceptRebuildRequest(
  env: RebuildEnv,
  tenantId: string,
  conversationId: string,
  webhookId: string,
  now = new Date(),
): Promise<RebuildRequested> {
  const earlier = await earlierDelivery(env.DB, tenantId, webhookId);
  if (earlier) return earlier;

  const conversation = await getConversation(env.DB, tenantId, conversationId);
  if (conversation === null)
    throw new EpicacheError("not_found", `no conversation ${conversationId}`);
  if (conversation.messageCount === 0)
    throw new EpicacheError(
      "conversation_empty",
      `conversation ${conversationId} has no messages to build from`,
    );
  const version = newVersionId();
  let named: DeliveryNamed;
  try {
    // One transaction: queue `version` or mark the follow-up, then record the delivery with the
    // version it is answered with (a webhook-id already recorded aborts it all).
    const results = await env.DB.batch([
      ...requestRebuild(env.DB, tenantId, conversationId, version, now.toISOString()),
      recordDelivery(
        env.DB,
        tenantId,
        webhookId,
        conversationId,
        WEBHOOK_VERSION_SQL,
        version,
        now.getTime() / 1000,
      ),
      namedByDelivery(env.DB, tenantId, webhookId),
    ]);
    named = results[3].results[0] as DeliveryNamed;
  } catch (e) {
    // The same webhook-id delivered twice at once: the other delivery recorded it first.
    const raced = await earlierDelivery(env.DB, tenantId, webhookId);
    if (raced) return raced;
    throw e;
  }
  if (named.version !== version) {
    const inFlight = named.status === "queued" || named.status === "submitted";
    return {
      outcome: inFlight ? "folded" : "current",
      conversationId,
      version: named.version,
      status: named.status ?? "succeeded",
      followUp: inFlight,
    };
  }
  const job: RebuildJob = { tenantId, conversationId, version };
  try {
    await env.REBUILD_QUEUE.send(job);
  } catch (e) {
    // Not enqueued: forget the delivery so that the sender's retry is not taken for a duplicate.
    await failRebuild(env, tenantId, conversationId, version, {
      code: "internal",
      message: "the rebuild could not be enqueued",
    });
    await deleteDelivery(env.DB, tenantId, webhookId);
    throw new EpicacheError("internal", "the rebuild could not be enqueued; retry the webhook", {
      cause: e,
    });
  }
  return { outcome: "enqueued", conversationId, version, status: "queued", followUp: false };
}

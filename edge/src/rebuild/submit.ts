/**
 * Submitting a queued rebuild: its conversation's transcript goes to a runner's `POST /v1/rebuild`
 * (signed, with the callback URL) and the runner's job is recorded. When the active version recorded
 * its last message, only the messages after it go, with that version as the base (an update);
 * otherwise, and for the full rebuild that follows an update the runner refused, the whole
 * transcript. A failure the tenant can read (the version's error, on `GET /v1/conversations/{id}`)
 * holds a code and its fixed text, never what a runner answered: that is logged, with the tenant,
 * conversation and version. The queue's consumer (consume.ts) calls it for each job.
 */
import {
  JobStatus,
  PUBLIC_MESSAGES,
  describeError,
  rendezvousKey,
  rendezvousOrder,
  type ErrorCode,
  type RebuildRequest,
  type TranscriptMessage,
} from "@epicache/shared";
import { getConversation } from "../db/conversations";
import { readTranscript, readTranscriptAfter } from "../db/messages";
import {
  activeBase,
  getVersion,
  markSubmitted,
  type VersionKind,
  type VersionRecord,
} from "../db/versions";
import type { EdgeConfig } from "../env";
import { logError, logWarn } from "../log";
import {
  callFirstAnswering,
  parseJson,
  readRunnerAnswer,
  tenantCode,
} from "../runner/runner-client";
import type { RebuildJob } from "./rebuild-job";
import { failRebuild, retryAsFull, type RebuildEnv } from "./settle";

/** The path runners post job completions to (signed with the runner secret). */
export const CALLBACK_PATH = "/v1/internal/rebuild-callback";

/** What happened to one job ("requeued": an update the runner refused went back as a full rebuild). */
export type RebuildOutcome = "submitted" | "skipped" | "requeued" | "failed" | "retry";

/** What a rebuild sends: the messages, and the base they continue (an update) or none (full). */
interface Snapshot {
  messages: TranscriptMessage[];
  base: { version: string; lastMessageId: string } | null;
  /** Every message the version will hold: the base's and these. */
  messageCount: number;
  kind: VersionKind;
  reason: string;
}

/**
 * What to send for `record`: the messages after the active version's last one when it recorded
 * that id and the record does not ask for a full rebuild; else the whole transcript.
 */
async function snapshot(
  db: D1Database,
  job: RebuildJob,
  record: VersionRecord,
  activeVersion: string | null,
): Promise<Snapshot | null> {
  const base =
    record.kind === "full" ? null : await activeBase(db, job.tenantId, job.conversationId);
  if (base !== null) {
    const after = await readTranscriptAfter(
      db,
      job.tenantId,
      job.conversationId,
      base.lastMessageId,
    );
    if (after !== null && after.messages.length > 0) {
      return {
        messages: after.messages,
        base: { version: base.version, lastMessageId: base.lastMessageId },
        messageCount: after.lastSeq,
        kind: "incremental",
        reason: `the ${after.messages.length} messages after ${base.version}`,
      };
    }
    // Nothing after the base (a rebuild queued before coalescing, with nothing new): built whole.
  }
  const whole = await readTranscript(db, job.tenantId, job.conversationId);
  if (whole.length === 0) return null;
  const reason =
    record.kind === "full" && record.reason !== null
      ? record.reason
      : base !== null
        ? `nothing new after ${base.version}`
        : activeVersion === null
          ? "first build"
          : `the active version ${activeVersion} records no last message (built before updates)`;
  // Seqs are contiguous from 1: the count is the last one's.
  return { messages: whole, base: null, messageCount: whole.length, kind: "full", reason };
}

/** Sends one job to a runner and records it; the outcome says whether to ack or retry. */
export async function submitRebuild(
  env: RebuildEnv,
  config: EdgeConfig,
  job: RebuildJob,
): Promise<RebuildOutcome> {
  const db = env.DB;
  const record = await getVersion(db, job.tenantId, job.conversationId, job.version);
  // Delivered again after a runner took it, or no longer wanted: nothing to do.
  if (record === null || record.status !== "queued") return "skipped";
  const fail = async (error: { code: string; message: string }): Promise<RebuildOutcome> => {
    await failRebuild(env, job.tenantId, job.conversationId, job.version, error);
    return "failed";
  };
  const conversation = await getConversation(db, job.tenantId, job.conversationId);
  // Stored before transcripts were capped: a runner would refuse the body (413) anyway.
  if (conversation !== null && conversation.transcriptBytes > config.maxTranscriptBytes) {
    return fail({
      code: "payload_too_large",
      message: `the transcript is ${conversation.transcriptBytes} bytes; a rebuild sends at most ${config.maxTranscriptBytes}`,
    });
  }
  const sent = await snapshot(db, job, record, conversation?.activeVersion ?? null);
  if (sent === null)
    return fail({ code: "conversation_empty", message: "the conversation has no messages" });
  const request: RebuildRequest = {
    tenant: job.tenantId,
    conversation: job.conversationId,
    version: job.version,
    messages: sent.messages,
    ...(sent.base === null ? {} : { base: sent.base }),
    config: {},
    callbackUrl: `${config.publicUrl}${CALLBACK_PATH}`,
  };
  const where = {
    tenantId: job.tenantId,
    conversationId: job.conversationId,
    version: job.version,
  };
  let answer: { runner: string; response: Response };
  try {
    answer = await callFirstAnswering(
      config,
      rendezvousOrder(rendezvousKey(job.tenantId, job.conversationId), config.runnerUrls),
      { method: "POST", path: "/v1/rebuild", body: request },
    );
  } catch (e) {
    logWarn("rebuild_not_submitted", { ...where, error: describeError(e) });
    return "retry";
  }
  if (!answer.response.ok) {
    // The runner refused the transcript itself (4xx): retrying would not help.
    const refusal = await readRunnerAnswer(answer.response);
    if (refusal.code === "base_unusable" && sent.base !== null) {
      // The runner's reason (a new speaker, drift, growth, another build) is kept as the version's.
      await retryAsFull(
        env,
        job.tenantId,
        job.conversationId,
        job.version,
        null,
        (refusal.message ?? "").slice(0, 500),
      );
      return "requeued";
    }
    const code = tenantCode(refusal.code);
    logError("rebuild_refused", {
      ...where,
      runner: answer.runner,
      status: refusal.status,
      code,
      answer: refusal.text.slice(0, 2000),
    });
    return fail({ code, message: PUBLIC_MESSAGES[code] });
  }
  const text = await answer.response.text().catch(() => "");
  const status = JobStatus.safeParse(parseJson(text));
  if (!status.success) {
    const code: ErrorCode = "runner_invalid";
    logError("rebuild_refused", {
      ...where,
      runner: answer.runner,
      status: answer.response.status,
      code,
      why: "not a job",
      answer: text.slice(0, 2000),
    });
    return fail({ code, message: PUBLIC_MESSAGES[code] });
  }
  await markSubmitted(
    db,
    job.tenantId,
    job.conversationId,
    job.version,
    {
      runnerUrl: answer.runner,
      job: status.data,
      messageCount: sent.messageCount,
      kind: sent.kind,
      reason: sent.reason,
      baseVersion: sent.base?.version ?? null,
    },
    new Date().toISOString(),
  );
  return "submitted";
}

/**
 * `epicache update`: the active version of a conversation in a store, continued with whatever the
 * file holds beyond that version's last message, published as the new active version; a full build
 * of the file when the update cannot continue it (update-episodes.ts says why).
 */
import { parseArgs } from "node:util";
import {
  CONVERSATION_FORMATS,
  EpicacheError,
  KVC_DTYPES,
  newVersionId,
  validateId,
  type Conversation,
  type SessionCursor,
} from "@epicache/shared";
import { openEmbedder } from "../embedder";
import { EpisodeStore, rebuildOptions, updateOrBuild, type EpisodeManifest } from "../episodes";
import { NUMERICS, openChatModel } from "../runtime";
import { requireModel } from "../model-registry";
import { defaultStoreLocation, openStore } from "../store";
import { choices, enumOption, readConversationFile, cpuSeconds } from "./args";

export const usage = `\
  update --conversation FILE --id ID [--out STORE] [--tenant local] [--format ${choices(CONVERSATION_FORMATS)}] [--sample ID]
         [--sessions A-B] [--version V] [--dtype f32|f16|int8] [--numerics ${choices(NUMERICS, "fast")}] [--model PATH] [--json]
                                     the active version continued with the file's messages after its
                                     last one (a full build when it cannot be: a new speaker, 2×
                                     growth, drift, other settings), published as the new active
                                     version. --json: {kind, reason, baseVersion, version,
                                     newMessages, contextTokens, positions, seconds, peakRssBytes, cpuSeconds}
`;

/**
 * The file's sessions after the base's last turn (the first one cut to the turns after it), and where
 * they leave the transcript; null when the file does not hold that turn.
 */
export function sessionsAfter(
  conversation: Conversation,
  base: EpisodeManifest,
): { delta: Conversation; cursor: SessionCursor; turns: number } | null {
  const last = base.update?.lastTurnId;
  const s = conversation.sessions.findIndex((session) => session.turns.some((t) => t.id === last));
  if (last === undefined || s < 0) return null;
  const current = conversation.sessions[s];
  const rest = current.turns.slice(current.turns.findIndex((t) => t.id === last) + 1);
  const sessions = [
    ...(rest.length > 0 ? [{ index: current.index, turns: rest }] : []),
    ...conversation.sessions.slice(s + 1),
  ];
  // The delta runs to the file's end: the transcript then stands at the file's last session, whole.
  const end = conversation.sessions[conversation.sessions.length - 1];
  const cursor: SessionCursor = { index: end.index, turns: end.turns.length };
  return {
    delta: { ...conversation, sessions },
    cursor,
    turns: sessions.reduce((n, x) => n + x.turns.length, 0),
  };
}

export async function updateCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      conversation: { type: "string" },
      format: { type: "string" },
      sample: { type: "string" },
      sessions: { type: "string" },
      out: { type: "string" },
      tenant: { type: "string" },
      id: { type: "string" },
      version: { type: "string" },
      dtype: { type: "string" },
      model: { type: "string" },
      numerics: { type: "string" },
      json: { type: "boolean", default: false },
    },
  });
  if (!values.conversation)
    throw new EpicacheError("invalid_argument", "update needs --conversation FILE");
  if (!values.id)
    throw new EpicacheError(
      "invalid_argument",
      "update needs --id ID (the conversation in the store)",
    );
  const started = performance.now();
  const tenant = validateId("tenant", values.tenant ?? "local");
  const id = validateId("conversation", values.id);
  const version = validateId("version", values.version ?? newVersionId());
  const format = enumOption("format", values.format, CONVERSATION_FORMATS);
  const numerics = enumOption("numerics", values.numerics, NUMERICS, "fast");
  const dtype =
    values.dtype === undefined ? undefined : enumOption("dtype", values.dtype, KVC_DTYPES);
  const conversation = readConversationFile(values.conversation, {
    format,
    sample: values.sample,
    sessions: values.sessions,
  });
  const store = new EpisodeStore(openStore(values.out ?? defaultStoreLocation()));
  const base = await store.resolve(tenant, id);
  const log = (m: string) => process.stderr.write(`${m}\n`);
  const model = await openChatModel(
    values.model ?? process.env.EPICACHE_CHAT_MODEL ?? requireModel("chat"),
    { numerics, log },
  );
  const embedder = await openEmbedder();
  try {
    const target = { store, tenant, conversation: id, version, dtype: dtype ?? base.dtype };
    const after = sessionsAfter(conversation, base);
    let summary: Record<string, unknown>;
    if (after !== null && after.turns === 0) {
      summary = {
        kind: "none",
        reason: "the file holds nothing after the active version",
        baseVersion: base.version,
        version: base.version,
        newMessages: 0,
        contextTokens: base.contextTokens,
      };
    } else {
      const next =
        after === null
          ? { full: `the file does not hold version ${base.version}'s last message` }
          : { delta: after.delta, cursor: after.cursor };
      // A full build builds as the base was built (its recorded options).
      const report = await updateOrBuild(
        model,
        embedder,
        base,
        next,
        conversation,
        target,
        rebuildOptions(base, { log }),
      );
      const m = report.manifest;
      summary = {
        kind: report.kind,
        reason: report.reason,
        baseVersion: m.update?.baseVersion ?? null,
        version: m.version,
        newMessages: after?.turns ?? null,
        contextTokens: m.contextTokens,
        positions: report.positions,
        seconds: { total: (performance.now() - started) / 1000, ...report.seconds },
        peakRssBytes: process.resourceUsage().maxRSS * 1024,
        cpuSeconds: cpuSeconds(),
      };
    }
    if (values.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
    else
      process.stdout.write(
        `${id}: ${summary.kind} (${summary.reason}); version ${summary.version}, ${summary.contextTokens} context tokens\n`,
      );
    return 0;
  } finally {
    await model.decoder.release();
    await embedder.release();
  }
}

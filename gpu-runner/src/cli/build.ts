/**
 * `epicache build`: a conversation file → a new version of its episode caches in a store (a directory,
 * default .epicache/store, or s3://bucket/prefix), published as the conversation's active version.
 */
import { parseArgs } from "node:util";
import {
  BUILD_METHODS,
  CONVERSATION_FORMATS,
  DEFAULT_ROUTING,
  DEFAULT_VOTE_K,
  EpicacheError,
  isValidId,
  KVC_DTYPES,
  newVersionId,
  parseMedoidCount,
  ROUTING_RULES,
  validateId,
  type RoutingRule,
} from "@epicache/shared";
import { openEmbedder } from "../embedder";
import { buildEpisodes, DEFAULT_N_MEDOID, EpisodeStore } from "../episodes";
import { NUMERICS, openChatModel } from "../runtime";
import { requireModel } from "../model-registry";
import { ALLOC_MODES } from "../calibration";
import { ALLOCATIONS, POSITION_MODES } from "../prefill";
import { defaultStoreLocation, openStore } from "../store";
import { Progress } from "./progress";
import {
  choices,
  enumOption,
  isPositiveInt,
  numberOption,
  readConversationFile,
  cpuSeconds,
} from "./args";

export const usage = `\
  build --conversation FILE [--out STORE] [--tenant local] [--id ID] [--version V] [--dtype ${choices(KVC_DTYPES, "f16")}] [--gc-grace 3600]
        [--format ${choices(CONVERSATION_FORMATS)}] [--sample ID] [--sessions A-B] [--method M]
        [--episodes 4] [--budget 1024] [--block 512] [--alloc ${choices(ALLOC_MODES)}] [--sharpness A] [--heads ${choices(ALLOCATIONS)}] [--n-medoid ${DEFAULT_N_MEDOID}|25%]
        [--max-context N] [--positions ${choices(POSITION_MODES)}] [--routing ${choices(ROUTING_RULES, DEFAULT_ROUTING.rule)}] [--vote-k ${DEFAULT_VOTE_K}]
        [--seed 42] [--numerics ${choices(NUMERICS, "fast")}] [--model PATH] [--json]
                                     a conversation's episode caches, published as its new active
                                     version. M: ${choices(BUILD_METHODS, "epicache", ", ")}.
                                     The whole history by default (--max-context N keeps whole
                                     sessions from the start within N tokens); compact positions
                                     keep every attention inside the model's window.
                                     --routing: how questions pick an episode: the window scoring
                                     highest by BM25 on the question's words (lexical; the nearest
                                     window when none of them is in any), the nearest window's
                                     (window), the most votes of the --vote-k nearest windows
                                     (vote), or the nearest centroid (centroid).
                                     STORE: a directory (default .epicache/store) or s3://bucket/prefix
                                     (AWS_* environment; EPICACHE_S3_FORCE_PATH_STYLE=1).
                                     Inactive versions older than the grace (seconds) are collected first
`;

/** What each stage of buildEpisodes does, as progress lines say it. */
const STAGES: Record<string, string> = {
  render: "rendering and tokenizing the history",
  embed: "embedding the windows",
  cluster: "clustering into episodes",
  calibrate: "layer budgets",
  prefill: "block-wise prefill",
  write: "writing the episode cache",
  publish: "publishing the version",
};

export async function buildCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      conversation: { type: "string" },
      format: { type: "string" },
      sample: { type: "string" },
      sessions: { type: "string" },
      episodes: { type: "string" },
      budget: { type: "string" },
      block: { type: "string" },
      method: { type: "string" },
      sharpness: { type: "string" },
      alloc: { type: "string" },
      heads: { type: "string" },
      "n-medoid": { type: "string" },
      seed: { type: "string" },
      "max-context": { type: "string" },
      positions: { type: "string" },
      out: { type: "string" },
      json: { type: "boolean", default: false },
      routing: { type: "string" },
      "vote-k": { type: "string" },
      model: { type: "string" },
      numerics: { type: "string" },
      tenant: { type: "string" },
      id: { type: "string" },
      version: { type: "string" },
      dtype: { type: "string" },
      "gc-grace": { type: "string" },
    },
  });
  if (!values.conversation)
    throw new EpicacheError("invalid_argument", "build needs --conversation FILE");
  const location = values.out ?? defaultStoreLocation();
  const tenant = validateId("tenant", values.tenant ?? "local");
  const version = validateId("version", values.version ?? newVersionId());
  const dtype = enumOption("dtype", values.dtype, KVC_DTYPES, "f16");
  const graceSeconds = numberOption("gc-grace", values["gc-grace"], 3600, (n) => n >= 0);
  const method = enumOption("method", values.method, BUILD_METHODS, "epicache");
  const alloc = enumOption("alloc", values.alloc, ALLOC_MODES);
  const format = enumOption("format", values.format, CONVERSATION_FORMATS);
  const numerics = enumOption("numerics", values.numerics, NUMERICS, "fast");
  const rule = enumOption("routing", values.routing, ROUTING_RULES, DEFAULT_ROUTING.rule);
  if (values["vote-k"] !== undefined && rule !== "vote")
    throw new EpicacheError("invalid_argument", "--vote-k goes with --routing vote");
  const routing: RoutingRule =
    rule === "vote"
      ? { rule, k: numberOption("vote-k", values["vote-k"], DEFAULT_VOTE_K, isPositiveInt) }
      : { rule };
  const opts = {
    method,
    episodes: numberOption("episodes", values.episodes, 4, isPositiveInt),
    budget: numberOption("budget", values.budget, 1024, isPositiveInt),
    blockSize: numberOption("block", values.block, 512, isPositiveInt),
    alloc,
    sharpness:
      values.sharpness === undefined
        ? undefined
        : numberOption("sharpness", values.sharpness, 0, (n) => n >= 0),
    headAllocation: enumOption("heads", values.heads, ALLOCATIONS),
    nMedoid: values["n-medoid"] === undefined ? undefined : parseMedoidCount(values["n-medoid"]),
    seed: numberOption("seed", values.seed, 42, (n) => Number.isInteger(n) && n >= 0),
    maxContext:
      values["max-context"] === undefined
        ? undefined
        : numberOption("max-context", values["max-context"], 0, isPositiveInt),
    positions: enumOption("positions", values.positions, POSITION_MODES, "compact"),
    routing,
  };
  const store = new EpisodeStore(openStore(location));
  const conversation = readConversationFile(values.conversation, {
    format,
    sample: values.sample,
    sessions: values.sessions,
  });
  const id = values.id ?? conversation.id;
  if (values.id === undefined && !isValidId(id))
    throw new EpicacheError(
      "invalid_argument",
      `the conversation's id ${JSON.stringify(id)} cannot name it in the store: give one with --id`,
    );
  validateId("conversation", id);

  const progress = new Progress("build");
  const log = (m: string) => progress.line(m);
  // Versions this build supersedes stay for readers until the next build's collection.
  const gc = await store.gc(tenant, id, { graceMs: graceSeconds * 1000 });
  if (gc.deleted.length > 0)
    log(
      `collected ${gc.deleted.length} old version(s) of ${tenant}/${id}: ${gc.deleted.join(", ")}`,
    );
  progress.stage("loading the models");
  const model = await openChatModel(
    values.model ?? process.env.EPICACHE_CHAT_MODEL ?? requireModel("chat"),
    { numerics, log },
  );
  const embedder = await openEmbedder();
  try {
    const report = await buildEpisodes(
      model,
      embedder,
      conversation,
      { store, tenant, conversation: id, version, dtype },
      {
        ...opts,
        log,
        onStage: (stage) => progress.stage(STAGES[stage] ?? stage),
        onProgress: ({ episode, episodes, block, blocks }) =>
          progress.update(
            episode * blocks + block,
            episodes * blocks,
            `blocks, episode ${episode + 1}/${episodes}`,
          ),
      },
    );
    progress.done();
    const m = report.manifest;
    const layers = m.model.layers;
    const summary = {
      episodes: m.episodes.map((e) => ({
        id: e.id,
        windows: e.windows.length,
        layers: Array.from({ length: layers }, (_, l) => ({
          budget: m.layerBudgets?.[l] ?? null,
          entries: report.entries[l][e.id],
        })),
      })),
      store: store.location,
      tenant,
      conversation: id,
      version,
      active: report.published?.active ?? null,
      dtype,
      bytes: m.episodes.reduce((n, e) => n + e.bytes, 0),
      kvHeads: m.model.kvHeads,
      layers,
      budget: m.budget,
      block: m.block,
      contextTokens: m.contextTokens,
      routing:
        m.routing.rule === "vote"
          ? { rule: m.routing.rule, k: m.routing.k }
          : { rule: m.routing.rule },
      sessions: { kept: report.sessionsKept, total: report.sessionsTotal },
      positions: report.positions,
      peakRssBytes: report.peakRssBytes,
      seconds: report.seconds,
      cpuSeconds: cpuSeconds(),
    };
    if (values.json) {
      process.stdout.write(`${JSON.stringify(summary)}\n`);
      return 0;
    }
    const out = (s: string) => process.stdout.write(`${s}\n`);
    out(
      `${m.conversation}: ${m.contextTokens} context tokens from ${report.sessionsKept} of ${report.sessionsTotal} sessions; ${method}, budget ${m.budget ?? "none (full KV)"} per head, blocks of ${m.block}`,
    );
    const { mode, max, window } = report.positions;
    out(
      `  positions: ${mode}, the largest ${max} (the model's window ${window})${max >= window ? ": beyond the window, where the model's attention was never trained" : ""}`,
    );
    for (const e of summary.episodes) {
      const total = e.layers.reduce((n, l) => n + l.entries, 0);
      out(
        `  episode ${e.id}: ${e.windows} windows, ${total} entries (${(total / layers / m.model.kvHeads).toFixed(0)} per head on average)`,
      );
    }
    const stored =
      m.routing.rule === "centroid"
        ? ""
        : ` (${m.episodes.reduce((n, e) => n + e.windows.length, 0)} window vectors in the manifest, int8${m.routing.rule === "lexical" ? ", and their terms" : ""})`;
    out(
      `  routing: ${m.routing.rule === "vote" ? `vote of the ${m.routing.k} nearest windows` : m.routing.rule}${stored}`,
    );
    if (m.layerBudgets) out(`  layer budgets (per head): ${m.layerBudgets.join(" ")}`);
    out(
      `  entries per layer (summed over heads, episode 0): ${summary.episodes[0].layers.map((l) => l.entries).join(" ")}`,
    );
    out(
      `  peak RSS ${(report.peakRssBytes / 2 ** 20).toFixed(0)} MiB; seconds: ${Object.entries(
        report.seconds,
      )
        .map(([k, v]) => `${k} ${v.toFixed(1)}`)
        .join(", ")}`,
    );
    out(
      `  stored ${(summary.bytes / 2 ** 20).toFixed(1)} MiB as ${dtype} in ${store.location} as ${tenant}/${id} version ${version}${report.published?.active === version ? " (active)" : `; ${report.published?.active} stays active (newer)`}`,
    );
    return 0;
  } finally {
    await model.decoder.release();
    await embedder.release();
  }
}

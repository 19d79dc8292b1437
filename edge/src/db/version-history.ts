/**
 * A conversation's versions as the console reads them (read-only): the history of its rebuilds, and
 * what one version's episodes hold as far as the edge knows it: the windows routed to each (from
 * `version_windows`, kept for the active version and the one active before it), the terms most
 * particular to them (`lexical` versions), and the size of each cache (from the runner's result).
 * The entries each cache holds (in all and per layer) and the start of each representative text are
 * as the runner reported them (`episode_details`).
 */
import type { RoutingRule } from "@epicache/shared";
import type { EpisodeDetails, VersionKind, VersionStatus } from "./versions";

/** A version as the history lists it. */
export interface VersionSummary {
  version: string;
  status: VersionStatus;
  kind: VersionKind | null;
  reason: string | null;
  baseVersion: string | null;
  messageCount: number | null;
  stage: string | null;
  progress: number | null;
  etaSeconds: number | null;
  error: { code: string; message: string } | null;
  createdAt: string;
  updatedAt: string;
  active: boolean;
  contextTokens: number | null;
  routing: RoutingRule["rule"] | null;
  episodeCount: number | null;
}

/** One episode of a succeeded version. */
export interface EpisodeSummary {
  id: number;
  windows: number | null;
  topTerms: string[] | null;
  cacheBytes: number | null;
  /** Entries its cache holds, in all and per layer over the KV heads; null for versions stored before the edge kept them. */
  entries: number | null;
  layerEntries: number[] | null;
  /** The start of its representative text (its patched prompt); null for versions stored before the edge kept it. */
  representative: string | null;
}

/** How many of the newest versions the history lists. */
export const HISTORY_LIMIT = 100;

/** How many terms {@link topTermsByEpisode} gives an episode at most. */
export const TOP_TERMS = 8;

interface SummaryRow {
  version: string;
  status: VersionStatus;
  kind: VersionKind | null;
  reason: string | null;
  base_version: string | null;
  message_count: number | null;
  stage: string | null;
  percent: number | null;
  eta_seconds: number | null;
  error_code: string | null;
  error_message: string | null;
  created_at: string;
  updated_at: string;
  context_tokens: number | null;
  routing_rule: RoutingRule["rule"] | null;
  episode_count: number | null;
  active: number;
}

// The episodes column holds every centroid (the embedder's dimension of floats each): only its
// length is read for a list.
const SUMMARY_COLUMNS = `v.version, v.status, v.kind, v.reason, v.base_version, v.message_count, v.stage, v.percent, v.eta_seconds,
  v.error_code, v.error_message, v.created_at, v.updated_at, v.context_tokens, v.routing_rule,
  CASE WHEN v.status = 'succeeded' AND v.episodes IS NOT NULL THEN json_array_length(v.episodes) END AS episode_count,
  (c.active_version IS v.version) AS active`;

function toSummary(r: SummaryRow): VersionSummary {
  const succeeded = r.status === "succeeded";
  return {
    version: r.version,
    status: r.status,
    kind: r.kind,
    reason: r.reason,
    baseVersion: r.base_version,
    messageCount: r.message_count,
    stage: r.stage,
    progress: r.percent,
    etaSeconds: r.eta_seconds,
    error: r.error_code !== null ? { code: r.error_code, message: r.error_message ?? "" } : null,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    active: r.active === 1,
    contextTokens: succeeded ? r.context_tokens : null,
    // Versions stored before routing rules are routed by centroid.
    routing: succeeded ? (r.routing_rule ?? "centroid") : null,
    episodeCount: r.episode_count,
  };
}

/**
 * The newest {@link HISTORY_LIMIT} versions of the tenant's conversation, newest first, and whether
 * there are older ones.
 */
export async function listVersions(
  db: D1Database,
  tenantId: string,
  conversationId: string,
): Promise<{ versions: VersionSummary[]; more: boolean }> {
  const { results } = await db
    .prepare(
      `SELECT ${SUMMARY_COLUMNS} FROM versions v JOIN conversations c ON c.tenant_id = v.tenant_id AND c.id = v.conversation_id
       WHERE v.tenant_id = ? AND v.conversation_id = ? ORDER BY v.version DESC LIMIT ?`,
    )
    .bind(tenantId, conversationId, HISTORY_LIMIT + 1)
    .all<SummaryRow>();
  return {
    versions: results.slice(0, HISTORY_LIMIT).map(toSummary),
    more: results.length > HISTORY_LIMIT,
  };
}

/** One version of the tenant's conversation with its episodes (null until it succeeded), or null when there is no such version. */
export async function versionDetail(
  db: D1Database,
  tenantId: string,
  conversationId: string,
  version: string,
): Promise<(VersionSummary & { episodes: EpisodeSummary[] | null }) | null> {
  const row = await db
    .prepare(
      `SELECT ${SUMMARY_COLUMNS}, v.episodes, v.episode_details FROM versions v JOIN conversations c ON c.tenant_id = v.tenant_id AND c.id = v.conversation_id
       WHERE v.tenant_id = ? AND v.conversation_id = ? AND v.version = ?`,
    )
    .bind(tenantId, conversationId, version)
    .first<SummaryRow & { episodes: string | null; episode_details: string | null }>();
  if (row === null) return null;
  const summary = toSummary(row);
  if (row.status !== "succeeded" || row.episodes === null) return { ...summary, episodes: null };
  const stored = JSON.parse(row.episodes) as Array<{ id: number; bytes?: number }>;
  const details =
    row.episode_details === null ? [] : (JSON.parse(row.episode_details) as EpisodeDetails[]);
  const { results } = await db
    .prepare(
      "SELECT episodes, terms FROM version_windows WHERE tenant_id = ? AND conversation_id = ? AND version = ? ORDER BY chunk",
    )
    .bind(tenantId, conversationId, version)
    .all<{ episodes: string; terms: string | null }>();
  const windowEpisodes: number[] = [];
  const windowTerms: string[][] = [];
  let lexical = results.length > 0;
  for (const r of results) {
    windowEpisodes.push(...(JSON.parse(r.episodes) as number[]));
    if (r.terms === null) lexical = false;
    else if (lexical)
      windowTerms.push(
        ...(JSON.parse(r.terms) as string[]).map((t) => (t === "" ? [] : t.split(" "))),
      );
  }
  const counts = stored.map(() => 0);
  for (const e of windowEpisodes) if (e < counts.length) counts[e] += 1;
  const terms = lexical ? topTermsByEpisode(windowEpisodes, windowTerms, stored.length) : null;
  return {
    ...summary,
    episodes: stored.map((e, i) => ({
      id: e.id,
      windows: results.length > 0 ? counts[i] : null,
      topTerms: terms === null ? null : terms[i],
      cacheBytes: typeof e.bytes === "number" ? e.bytes : null,
      entries: details[i]?.entries ?? null,
      layerEntries: details[i]?.layerEntries ?? null,
      representative: details[i]?.representative ?? null,
    })),
  };
}

/**
 * For each of `episodeCount` episodes, up to `k` terms most particular to its windows: a term scores
 * the number of the episode's windows that hold it times log(1 + windows / windows that hold it
 * anywhere), so that a term every window uses ranks below one only this episode's windows use; ties
 * go to the alphabetically first term. Terms of one or two characters (stems such as `ll`, `br`)
 * say little to a reader and are left out.
 *
 * @example
 * ```ts
 * topTermsByEpisode([0, 0, 1], [["pottery", "class"], ["pottery", "teacher"], ["marathon", "class"]], 2, 2);
 * // [["pottery", "teacher"], ["marathon", "class"]]
 * ```
 */
export function topTermsByEpisode(
  windowEpisodes: readonly number[],
  windowTerms: readonly (readonly string[])[],
  episodeCount: number,
  k = TOP_TERMS,
): string[][] {
  const inEpisode = Array.from({ length: episodeCount }, () => new Map<string, number>());
  const anywhere = new Map<string, number>();
  windowEpisodes.forEach((e, w) => {
    for (const term of new Set(windowTerms[w] ?? [])) {
      if (term.length < 3) continue;
      anywhere.set(term, (anywhere.get(term) ?? 0) + 1);
      const counts = inEpisode[e];
      if (counts !== undefined) counts.set(term, (counts.get(term) ?? 0) + 1);
    }
  });
  const windows = windowEpisodes.length;
  return inEpisode.map((counts) =>
    [...counts]
      .map(([term, n]) => ({ term, score: n * Math.log(1 + windows / (anywhere.get(term) ?? 1)) }))
      .sort((a, b) => b.score - a.score || (a.term < b.term ? -1 : a.term > b.term ? 1 : 0))
      .slice(0, k)
      .map((t) => t.term),
  );
}

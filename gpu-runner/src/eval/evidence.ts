/**
 * How much of a question's evidence a cache still holds: the share of the evidence turns' tokens
 * whose entries survived eviction, averaged over layers and KV heads. It separates a method that
 * evicted the evidence from one that kept it and still answered wrong.
 */
import { formatTurnLine, renderContext, type Conversation } from "@epicache/shared";
import type { KvCache } from "../runtime";
import type { ChatFrame } from "../press";

/** Per turn id, its tokens' history positions [start, end) in the context a build prefills. */
export type TurnSpans = Map<string, [number, number]>;

/**
 * The positions of every turn's line in the context a build prefills, `frame.open` then
 * `frame.history(renderContext(conversation))`: the history is encoded line by line, so each turn's
 * line has tokens of its own.
 */
export function turnSpans(frame: ChatFrame, conversation: Conversation): TurnSpans {
  const lines = renderContext(conversation).split("\n");
  const turns = conversation.sessions.flatMap((s) => s.turns);
  const spans: TurnSpans = new Map();
  let at = frame.open.length;
  let next = 0;
  lines.forEach((line, i) => {
    if (i > 0) at += frame.history("\n").length;
    const n = line === "" ? 0 : frame.history(line).length;
    // Turn lines come in order; other lines (the header, DATE lines, blank ones) lie between them.
    if (next < turns.length && line === formatTurnLine(turns[next]))
      spans.set(turns[next++].id, [at, at + n]);
    at += n;
  });
  if (next !== turns.length)
    throw new Error(`turnSpans: turn ${turns[next].id} is not in the rendered context`);
  return spans;
}

/**
 * Per turn, how many (layer, head, token) entries of its span the cache holds, out of
 * span × layers × kvHeads. Read from the entries' origins, so compaction does not matter.
 */
export function keptByTurn(cache: KvCache, spans: TurnSpans): Record<string, [number, number]> {
  const ends = [...spans.entries()].sort((a, b) => a[1][0] - b[1][0]);
  const last = ends.length ? ends[ends.length - 1][1][1] : 0;
  // Position → index into `ends` (−1: no turn there).
  const owner = new Int32Array(last).fill(-1);
  ends.forEach(([, [start, end]], i) => owner.fill(i, start, end));
  const kept = new Float64Array(ends.length);
  for (const layer of cache.layers) {
    for (let h = 0; h < layer.lengths.length; h++) {
      const base = h * layer.capacity;
      for (let i = 0; i < layer.lengths[h]; i++) {
        const p = layer.origins[base + i];
        const o = p < last ? owner[p] : -1;
        if (o >= 0) kept[o]++;
      }
    }
  }
  const slots = cache.layers.length * cache.kvHeads;
  return Object.fromEntries(
    ends.map(([id, [start, end]], i) => [id, [kept[i], (end - start) * slots]]),
  );
}

/** The share of the evidence turns' entries kept (token-weighted); null when none of them is in the history. */
export function evidenceKept(
  kept: Record<string, [number, number]>,
  evidence: readonly string[],
): number | null {
  let have = 0,
    all = 0;
  for (const id of evidence) {
    const k = kept[id];
    if (!k) continue;
    have += k[0];
    all += k[1];
  }
  return all > 0 ? have / all : null;
}

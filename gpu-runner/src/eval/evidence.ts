/**
 * How much of a question's evidence a cache still holds: the share of the evidence turns' tokens
 * whose entries survived eviction, averaged over layers and KV heads. It separates a method that
 * evicted the evidence from one that kept it and still answered wrong.
 */
import { formatTurnLine, renderContext, type Conversation } from "@epicache/shared";
import type { KvCache } from "../model";
import type { ChatFrame } from "../press";

/** Per turn id, its tokens' history positions [start, end) in the context a build prefills. */
export type TurnSpans = Map<string, [number, number]>;

/**
 * The positions of every turn's line in `frame.open + frame.text(renderContext(conversation))`. The
 * text is tokenised piece by piece (the text between turn lines, then each line), which gives the
 * tokens of the whole text when no token spans a line break; when one does, positions are
 * interpolated from character offsets instead (off by a token or so at a turn's edges).
 */
export function turnSpans(frame: ChatFrame, conversation: Conversation): TurnSpans {
  const text = renderContext(conversation);
  const turns = conversation.sessions.flatMap((s) => s.turns);
  const pieces: Array<{ text: string; turn: string | null }> = [];
  let cursor = 0;
  for (const turn of turns) {
    const line = formatTurnLine(turn);
    const at = text.indexOf(line, cursor);
    if (at < 0) throw new Error(`turnSpans: turn ${turn.id} is not in the rendered context`);
    if (at > cursor) pieces.push({ text: text.slice(cursor, at), turn: null });
    pieces.push({ text: line, turn: turn.id });
    cursor = at + line.length;
  }
  if (cursor < text.length) pieces.push({ text: text.slice(cursor), turn: null });
  const whole = frame.text(text);
  const encoded = pieces.map((p) => frame.text(p.text));
  const spans: TurnSpans = new Map();
  const offset = frame.open.length;
  if (encoded.reduce((n, e) => n + e.length, 0) === whole.length && encoded.flat().every((t, i) => t === whole[i])) {
    let at = offset;
    pieces.forEach((p, i) => {
      if (p.turn !== null) spans.set(p.turn, [at, at + encoded[i].length]);
      at += encoded[i].length;
    });
    return spans;
  }
  const perChar = whole.length / Math.max(1, text.length);
  let chars = 0;
  for (const p of pieces) {
    if (p.turn !== null) spans.set(p.turn, [offset + Math.floor(chars * perChar), offset + Math.ceil((chars + p.text.length) * perChar)]);
    chars += p.text.length;
  }
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
  return Object.fromEntries(ends.map(([id, [start, end]], i) => [id, [kept[i], (end - start) * slots]]));
}

/** The share of the evidence turns' entries kept (token-weighted); null when none of them is in the history. */
export function evidenceKept(kept: Record<string, [number, number]>, evidence: readonly string[]): number | null {
  let have = 0, all = 0;
  for (const id of evidence) {
    const k = kept[id];
    if (!k) continue;
    have += k[0];
    all += k[1];
  }
  return all > 0 ? have / all : null;
}

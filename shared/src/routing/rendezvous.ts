/**
 * Rendezvous (highest random weight) hashing: every node gets a score for a key, and the key goes to
 * the node with the highest score, then the next highest on failure. Adding or removing a node moves
 * only the keys that it wins or won, so an episode keeps hitting the runner that has its cache warm.
 * The hash is a fixed 53-bit string hash (cyrb53 over UTF-16 code units): the same on every
 * runtime, and spread well enough for a handful of nodes; not for security.
 */

/** 53-bit hash of a string (cyrb53). */
function hash53(text: string, seed = 0): number {
  let h1 = 0xdeadbeef ^ seed;
  let h2 = 0x41c6ce57 ^ seed;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ ch, 2654435761);
    h2 = Math.imul(h2 ^ ch, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507);
  h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507);
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return 4294967296 * (2097151 & h2) + (h1 >>> 0);
}

/**
 * The key of a routed request: its parts joined by `/` (ids never contain `/`).
 *
 * @example
 * ```ts
 * rendezvousKey("tenant-1", "conv-26", 2); // "tenant-1/conv-26/2"
 * ```
 */
export function rendezvousKey(...parts: readonly (string | number)[]): string {
  return parts.join("/");
}

/**
 * `nodes` in the order a request with `key` should try them: highest score first (ties, which need
 * equal 53-bit hashes, go to the lower node name). Duplicates are dropped.
 *
 * @example
 * ```ts
 * const runners = ["http://r0:8788", "http://r1:8788", "http://r2:8788"];
 * for (const runner of rendezvousOrder(rendezvousKey(tenant, conversation, episode), runners)) {
 *   const res = await fetch(runner + "/v1/generate", …).catch(() => null);
 *   if (res?.ok) return res;
 * }
 * ```
 */
export function rendezvousOrder<T extends string>(key: string, nodes: readonly T[]): T[] {
  const scored = [...new Set(nodes)].map((node) => ({
    node,
    score: hash53(`${key}\u0000${node}`),
  }));
  scored.sort((a, b) => b.score - a.score || (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
  return scored.map((s) => s.node);
}

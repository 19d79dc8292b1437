/**
 * Object keys of the episode store (docs/design.md §3), built only from validated ids:
 *
 *   tenants/{tenant}/conversations/{conversation}/active.json                       the active pointer
 *   tenants/{tenant}/conversations/{conversation}/versions/{version}/manifest.json  written after its blobs
 *   tenants/{tenant}/conversations/{conversation}/versions/{version}/episode-{e}.kvc
 */
import { EpicacheError } from "../errors";
import { validateId } from "./ids";

/**
 * Where one conversation's objects live, with a trailing slash.
 *
 * @example
 * ```ts
 * conversationPrefix("t1", "c1"); // "tenants/t1/conversations/c1/"
 * ```
 */
export function conversationPrefix(tenant: string, conversation: string): string {
  return `tenants/${validateId("tenant", tenant)}/conversations/${validateId("conversation", conversation)}/`;
}

/**
 * The key of a conversation's active pointer.
 *
 * @example
 * ```ts
 * activeKey("t1", "c1"); // "tenants/t1/conversations/c1/active.json"
 * ```
 */
export function activeKey(tenant: string, conversation: string): string {
  return `${conversationPrefix(tenant, conversation)}active.json`;
}

/**
 * Where one version's objects live, with a trailing slash.
 *
 * @example
 * ```ts
 * versionPrefix("t1", "c1", "v1"); // "tenants/t1/conversations/c1/versions/v1/"
 * ```
 */
export function versionPrefix(tenant: string, conversation: string, version: string): string {
  return `${conversationPrefix(tenant, conversation)}versions/${validateId("version", version)}/`;
}

/**
 * The key of a version's manifest.
 *
 * @example
 * ```ts
 * manifestKey("t1", "c1", "v1"); // "tenants/t1/conversations/c1/versions/v1/manifest.json"
 * ```
 */
export function manifestKey(tenant: string, conversation: string, version: string): string {
  return `${versionPrefix(tenant, conversation, version)}manifest.json`;
}

/**
 * The key of episode `episode`'s cache in a version.
 *
 * @example
 * ```ts
 * episodeKey("t1", "c1", "v1", 2); // "tenants/t1/conversations/c1/versions/v1/episode-2.kvc"
 * ```
 */
export function episodeKey(
  tenant: string,
  conversation: string,
  version: string,
  episode: number,
): string {
  if (!Number.isInteger(episode) || episode < 0 || episode > 9999) {
    throw new EpicacheError("invalid_argument", `episode ${episode} is not an integer in 0 … 9999`);
  }
  return `${versionPrefix(tenant, conversation, version)}episode-${episode}.kvc`;
}

/**
 * The version a key under a conversation's `versions/` belongs to, or null for any other key.
 *
 * @example
 * ```ts
 * versionOfKey("tenants/t1/conversations/c1/", "tenants/t1/conversations/c1/versions/v1/episode-0.kvc"); // "v1"
 * ```
 */
export function versionOfKey(prefix: string, key: string): string | null {
  if (!key.startsWith(`${prefix}versions/`)) return null;
  const rest = key.slice(prefix.length + "versions/".length);
  const slash = rest.indexOf("/");
  return slash > 0 ? rest.slice(0, slash) : null;
}

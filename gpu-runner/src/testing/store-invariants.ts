/**
 * What must hold of a conversation in the store whatever failed while publishing (docs/design.md §3), for
 * fault and crash tests: every manifest under the conversation names only blobs that exist with the
 * size it records, and the active pointer (if any) names a version with a manifest.
 */
import { activeKey, conversationPrefix, versionOfKey } from "@epicache/shared";
import { parseManifest } from "../episodes/manifest";
import type { ObjectStore } from "../store";

export interface StoreSurvey {
  /** The version the active pointer names, or null. */
  active: string | null;
  /** Versions that have a manifest, in key order. */
  manifests: string[];
  /** Versions that have objects but no manifest (a publish that stopped before its manifest). */
  unpublished: string[];
  /** Broken invariants, each a sentence; empty when the store is consistent. */
  problems: string[];
}

const decoder = new TextDecoder();

/** Lists every manifest under the conversation and heads every blob each one names. */
export async function surveyConversation(
  objects: ObjectStore,
  tenant: string,
  conversation: string,
): Promise<StoreSurvey> {
  const prefix = conversationPrefix(tenant, conversation);
  const versions = new Map<string, string[]>();
  for await (const o of objects.list(`${prefix}versions/`)) {
    const v = versionOfKey(prefix, o.key);
    if (v !== null) versions.set(v, [...(versions.get(v) ?? []), o.key]);
  }
  const survey: StoreSurvey = { active: null, manifests: [], unpublished: [], problems: [] };
  for (const [version, keys] of versions) {
    const key = keys.find((k) => k.endsWith("/manifest.json"));
    if (key === undefined) {
      survey.unpublished.push(version);
      continue;
    }
    survey.manifests.push(version);
    const manifest = parseManifest(decoder.decode((await objects.get(key)).bytes), key);
    for (const e of manifest.episodes) {
      const head = await objects.head(e.key);
      if (head === null) survey.problems.push(`${key} names ${e.key}, which does not exist`);
      else if (head.size !== e.bytes)
        survey.problems.push(`${key} says ${e.key} has ${e.bytes} bytes; it has ${head.size}`);
    }
  }
  const pointer = await objects.head(activeKey(tenant, conversation));
  if (pointer !== null) {
    const { version } = JSON.parse(
      decoder.decode((await objects.get(activeKey(tenant, conversation))).bytes),
    ) as { version: string };
    survey.active = version;
    if (!survey.manifests.includes(version))
      survey.problems.push(`the active pointer names ${version}, which has no manifest`);
  }
  return survey;
}

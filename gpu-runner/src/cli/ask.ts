/** `epicache ask`: route a question to one of a conversation's episode caches and answer from it. */
import { parseArgs } from "node:util";
import { EpicacheError, validateId } from "@epicache/shared";
import { openEmbedder } from "../embedder";
import { askEpisodes, EpisodeStore } from "../episodes";
import { openChatModel, type Numerics } from "../runtime";
import { findChatModel } from "../model-registry";
import { defaultStoreLocation, openStore } from "../store";
import { isPositiveInt, numberOption } from "./args";

export const usage = `\
  ask --question TEXT [--store STORE] [--tenant local] [--id ID] [--version V] [--max-tokens 64] [--model PATH] [--json]
                                     route to an episode of the active (or given) version by the
                                     rule its manifest records (lexical, window, vote or centroid) and answer
                                     from its cache, with the model its manifest names (found in the
                                     model cache by fingerprint, or PATH, checked)
`;

export async function askCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      store: { type: "string" },
      tenant: { type: "string" },
      id: { type: "string" },
      version: { type: "string" },
      question: { type: "string" },
      json: { type: "boolean", default: false },
      "max-tokens": { type: "string" },
      model: { type: "string" },
    },
  });
  if (values.question === undefined)
    throw new EpicacheError("invalid_argument", "ask needs --question TEXT");
  const maxTokens = numberOption("max-tokens", values["max-tokens"], 64, isPositiveInt);
  const tenant = validateId("tenant", values.tenant ?? "local");
  const store = new EpisodeStore(openStore(values.store ?? defaultStoreLocation()));
  let id = values.id;
  if (id === undefined) {
    // One conversation in the store: that one.
    const found = await store.conversations(tenant);
    if (found.length !== 1) {
      throw new EpicacheError(
        found.length === 0 ? "store_not_found" : "invalid_argument",
        found.length === 0
          ? `${store.location} holds no conversations of tenant ${tenant}; build one with \`npx epicache build\``
          : `${store.location} holds ${found.length} conversations of tenant ${tenant} (${found.slice(0, 5).join(", ")}${found.length > 5 ? ", …" : ""}): choose one with --id`,
      );
    }
    id = found[0];
  }
  validateId("conversation", id);
  const manifest =
    values.version === undefined
      ? await store.resolve(tenant, id)
      : await store.readManifest(tenant, id, validateId("version", values.version));
  const log = (m: string) => process.stderr.write(`${m}\n`);
  // The manifest names the model by id and fingerprint: found in this machine's model cache, or the
  // given file checked against it.
  const path = findChatModel(manifest.model, {
    model: values.model ?? (process.env.EPICACHE_CHAT_MODEL || undefined),
  });
  const model = await openChatModel(path, { numerics: manifest.model.numerics as Numerics, log });
  const embedder = await openEmbedder();
  try {
    const result = await askEpisodes(model, embedder, store, manifest, values.question, {
      maxTokens,
    });
    if (values.json) {
      process.stdout.write(`${JSON.stringify(result)}\n`);
    } else {
      const rule =
        result.rule.rule === "vote"
          ? `the top ${result.rule.k} windows' votes`
          : result.scoredBy === "lexical"
            ? "its best window's BM25 score"
            : result.scoredBy === "window"
              ? `its best window's cosine${result.rule.rule === "lexical" ? ", no word of the question in any window" : ""}`
              : "centroid cosines";
      process.stdout.write(
        `version ${result.version}, episode ${result.episode} (${rule}: ${result.scores.map((c) => (Number.isInteger(c) ? String(c) : c.toFixed(3))).join(", ")})\n${result.answer}\n`,
      );
    }
    return 0;
  } finally {
    await model.decoder.release();
    await embedder.release();
  }
}

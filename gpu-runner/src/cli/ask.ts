/** `epicache ask`: route a question to an episode cache and answer from it. */
import { parseArgs } from "node:util";
import { EpicacheError } from "@epicache/shared";
import { openEmbedder } from "../embedder";
import { askEpisodes, readManifest } from "../episodes";
import { openChatModel, type Numerics } from "../model";
import { isPositiveInt, numberOption } from "./args";

export async function askCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv, strict: true,
    options: { store: { type: "string" }, question: { type: "string" }, json: { type: "boolean", default: false }, "max-tokens": { type: "string" } },
  });
  if (!values.store) throw new EpicacheError("invalid_argument", "ask needs --store DIR");
  if (values.question === undefined) throw new EpicacheError("invalid_argument", "ask needs --question TEXT");
  const maxTokens = numberOption("max-tokens", values["max-tokens"], 64, isPositiveInt);
  const manifest = readManifest(values.store);
  const log = (m: string) => process.stderr.write(`${m}\n`);
  const model = await openChatModel(manifest.model.path, { numerics: manifest.model.numerics as Numerics, log });
  const embedder = await openEmbedder();
  try {
    const result = await askEpisodes(model, embedder, values.store, values.question, { maxTokens });
    if (values.json) {
      process.stdout.write(`${JSON.stringify(result)}\n`);
    } else {
      process.stdout.write(`episode ${result.episode} (cosines ${result.cosines.map((c) => c.toFixed(3)).join(", ")})\n${result.answer}\n`);
    }
    return 0;
  } finally {
    await model.decoder.release();
    await embedder.release();
  }
}

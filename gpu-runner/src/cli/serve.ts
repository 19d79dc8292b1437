/** `epicache serve`: the runner's HTTP service, with embedded defaults. */
import { parseArgs } from "node:util";
import { loadRunnerConfig, secretPath, startRunner } from "../server";
import { isPositiveInt, numberOption } from "./args";

export const usage = `\
  serve [--port 8788] [--host 127.0.0.1] [--store STORE] [--config FILE]
                                     the runner's HTTP service (embed, rebuild jobs, generate,
                                     metrics); EPICACHE_RUNNER_* environment, see server/config.ts
`;

export async function serveCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      port: { type: "string" },
      host: { type: "string" },
      config: { type: "string" },
      store: { type: "string" },
    },
  });
  const config = loadRunnerConfig({
    file: values.config,
    overrides: {
      port:
        values.port === undefined
          ? undefined
          : numberOption("port", values.port, 8788, (n) => n === 0 || isPositiveInt(n)),
      host: values.host,
      store: values.store,
    },
  });
  const log = (m: string) => process.stderr.write(`${m}\n`);
  const running = await startRunner(config, log);
  const secretFrom = process.env.EPICACHE_RUNNER_SECRET ? "EPICACHE_RUNNER_SECRET" : secretPath();
  process.stdout.write(
    `epicache runner listening on ${running.url} (store ${running.runner.store.location}; requests signed with the secret in ${secretFrom})\n`,
  );
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  process.stderr.write("stopping: finishing running jobs…\n");
  await running.close();
  return 0;
}

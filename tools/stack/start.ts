/**
 * `npm start`: the runner and the edge on this machine, until interrupted.
 *
 *   npm start -- [--runner-port 8788] [--edge-port 8787]
 *
 * The runner runs in this process and the edge under `wrangler dev` with local D1 and Queues
 * (start-stack.ts). Errors end in a one-line message with the stable code, as the epicache CLI's do.
 */
import { parseArgs } from "node:util";
import { isEpicacheError } from "@epicache/shared";
import { numberOption } from "../../gpu-runner/src/cli/args";
import { startStack } from "./start-stack";

const USAGE = "usage: npm start -- [--runner-port 8788] [--edge-port 8787]\n";

async function start(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      "runner-port": { type: "string" },
      "edge-port": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const port = (name: string, v: string | undefined) =>
    v === undefined
      ? undefined
      : numberOption(name, v, 0, (n) => Number.isInteger(n) && n >= 0 && n < 65536);
  const log = (m: string) => process.stderr.write(`${m}\n`);
  const stack = await startStack({
    runnerPort: port("runner-port", values["runner-port"]),
    edgePort: port("edge-port", values["edge-port"]),
    log,
  });
  process.stdout.write(
    [
      `edge    ${stack.edgeUrl}   (the API: ${stack.edgeUrl}/openapi.json)`,
      `runner  ${stack.runner.url}   (store ${stack.runner.runner.store.location})`,
      `admin token  ${stack.adminToken}`,
      `create a tenant:  curl -s -X POST ${stack.edgeUrl}/v1/tenants -H "authorization: Bearer ${stack.adminToken}" -H "content-type: application/json" -d '{"name":"me"}'`,
      "ready; Ctrl-C stops both",
      "",
    ].join("\n"),
  );
  await new Promise<void>((resolve) => {
    process.once("SIGINT", () => resolve());
    process.once("SIGTERM", () => resolve());
  });
  process.stderr.write("stopping…\n");
  await stack.close();
  return 0;
}

// The AWS SDK's notice that its 2027 releases will need Node 22 says nothing about this run (as in
// gpu-runner/bin/epicache.mjs; a user's setting wins).
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
try {
  process.exitCode = await start(process.argv.slice(2));
} catch (e) {
  if (isEpicacheError(e)) {
    process.stderr.write(`npm start: ${e.message} [${e.code}]\n`);
    process.exitCode = 1;
  } else if (
    e instanceof TypeError &&
    (e as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")
  ) {
    process.stderr.write(`npm start: ${e.message} [invalid_argument]\n${USAGE}`);
    process.exitCode = 2;
  } else {
    throw e;
  }
}

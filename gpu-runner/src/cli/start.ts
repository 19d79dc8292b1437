/** `epicache start` (`npm start`): the runner and the edge on this machine, until interrupted. */
import { parseArgs } from "node:util";
import { startStack } from "../stack";
import { numberOption } from "./args";

export const usage = `\
  start [--runner-port 8788] [--edge-port 8787]
                                     the whole stack (what \`npm start\` runs): the runner and the
                                     edge under wrangler dev with local D1 and Queues
`;

export async function startCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, strict: true, options: { "runner-port": { type: "string" }, "edge-port": { type: "string" } } });
  const port = (name: string, v: string | undefined) => (v === undefined ? undefined : numberOption(name, v, 0, (n) => Number.isInteger(n) && n >= 0 && n < 65536));
  const log = (m: string) => process.stderr.write(`${m}\n`);
  const stack = await startStack({ runnerPort: port("runner-port", values["runner-port"]), edgePort: port("edge-port", values["edge-port"]), log });
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

/**
 * `epicache` command-line entry. Each command lives in its own file; this one dispatches and turns
 * errors into a one-line message with the stable code and a non-zero exit status.
 */
import { isEpicacheError } from "@epicache/shared";
import * as ask from "./ask";
import * as build from "./build";
import * as calibrate from "./calibrate";
import * as demo from "./demo";
import * as evaluate from "./eval";
import * as generate from "./generate";
import * as models from "./models";
import * as serve from "./serve";
import * as update from "./update";

/** Each command's entry and its usage (kept beside its code), in the order the global usage lists them. */
const COMMANDS = new Map<string, { run: (argv: string[]) => Promise<number>; usage: string }>([
  ["models", { run: models.modelsCommand, usage: models.usage }],
  ["generate", { run: generate.generateCommand, usage: generate.usage }],
  ["build", { run: build.buildCommand, usage: build.usage }],
  ["update", { run: update.updateCommand, usage: update.usage }],
  ["ask", { run: ask.askCommand, usage: ask.usage }],
  ["calibrate", { run: calibrate.calibrateCommand, usage: calibrate.usage }],
  ["eval", { run: evaluate.evalCommand, usage: evaluate.usage }],
  ["serve", { run: serve.serveCommand, usage: serve.usage }],
  ["demo", { run: demo.demoCommand, usage: demo.usage }],
]);

const USAGE = `usage: epicache <command> [options]    (epicache <command> --help: that command's usage)

commands:
${[...COMMANDS.values()].map((c) => c.usage).join("")}`;

/** `--help` or `-h` among a command's options (not after `--`, where arguments are positional). */
function wantsHelp(argv: readonly string[]): boolean {
  const end = argv.indexOf("--");
  return (end < 0 ? argv : argv.slice(0, end)).some((a) => a === "--help" || a === "-h");
}

/** A command's usage on its own: its first line after `usage: epicache`, the rest shifted to match. */
function commandHelp(usage: string): string {
  const prefix = "usage: epicache ";
  const shift = " ".repeat(prefix.length - 2);
  return usage.replace(/^ {2}/, prefix).replace(/\n(?=.)/g, `\n${shift}`);
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    const entry = command === undefined ? undefined : COMMANDS.get(command);
    if (entry) {
      if (wantsHelp(rest)) {
        process.stdout.write(commandHelp(entry.usage));
        return 0;
      }
      return await entry.run(rest);
    }
    switch (command) {
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

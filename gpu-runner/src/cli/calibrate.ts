/** `epicache calibrate`: measure a layer profile of the model at a budget and save it next to the model. */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { EpicacheError } from "@epicache/shared";
import { calibrate, SENSITIVITY_PROTOCOLS } from "../calibration";
import { NUMERICS, openChatModel } from "../runtime";
import { requireModel } from "../model-registry";
import { Progress } from "./progress";
import { choices, enumOption, isPositiveInt, numberOption } from "./args";

export const usage = `\
  calibrate [--protocol ${choices(SENSITIVITY_PROTOCOLS, "output")}] [--budget 1024] [--block 512] [--sinks 128] [--text FILE]
            [--numerics ${choices(NUMERICS, "fast")}] [--model PATH] [--json]
                                     a layer profile at a budget, saved next to the model: keys (the
                                     authors' windowed-mask key cosine, for --alloc official) or
                                     output (next-token KL of squeezing one layer at a time, and the
                                     sharpness that does best, for --alloc output). Default text: a
                                     generated chat as long as the model's window allows
`;

export async function calibrateCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      model: { type: "string" },
      text: { type: "string" },
      budget: { type: "string" },
      block: { type: "string" },
      sinks: { type: "string" },
      protocol: { type: "string" },
      numerics: { type: "string" },
      json: { type: "boolean", default: false },
    },
  });
  const numerics = enumOption("numerics", values.numerics, NUMERICS, "fast");
  const protocol = enumOption("protocol", values.protocol, SENSITIVITY_PROTOCOLS, "output");
  const budget = numberOption("budget", values.budget, 1024, isPositiveInt);
  const blockSize = numberOption("block", values.block, 512, isPositiveInt);
  const sinks = numberOption("sinks", values.sinks, 128, isPositiveInt);
  let text: string | undefined;
  if (values.text !== undefined) {
    try {
      text = readFileSync(values.text, "utf8");
    } catch (e) {
      throw new EpicacheError(
        "invalid_argument",
        `cannot read ${values.text}: ${(e as Error).message}`,
      );
    }
  }
  const progress = new Progress("calibrate");
  const log = (m: string) => progress.line(m);
  progress.stage("loading the model");
  const model = await openChatModel(
    values.model ?? process.env.EPICACHE_CHAT_MODEL ?? requireModel("chat"),
    { numerics, log },
  );
  try {
    progress.stage(`${protocol} profile at budget ${budget}`);
    const { profile, path } = await calibrate(model, {
      protocol,
      text,
      log,
      budget,
      blockSize,
      sinks,
      onProgress: (done, total) => progress.update(done, total, "runs"),
    });
    progress.done();
    if (values.json) {
      process.stdout.write(`${JSON.stringify(profile)}\n`);
      return 0;
    }
    const what =
      protocol === "keys"
        ? "key cosine σ (lower: more sensitive)"
        : "next-token KL when squeezed alone (higher: more sensitive)";
    const bar = protocol === "keys" ? (v: number) => 1 - v : (v: number) => v;
    const top = Math.max(...profile.signal.map(bar), 1e-12);
    process.stdout.write(
      `layer profile (${protocol}) at budget ${budget}, ${profile.params.tokens} tokens; ${what}:\n`,
    );
    profile.signal.forEach((v, l) =>
      process.stdout.write(
        `  layer ${String(l).padStart(2)}  ${v.toFixed(5)}  ${"▇".repeat(Math.round((bar(v) / top) * 40))}\n`,
      ),
    );
    for (const s of profile.selection)
      process.stdout.write(
        `  sharpness ${s.sharpness}: KL ${s.kl.toFixed(5)}${s.sharpness === profile.sharpness ? "  ← chosen" : ""}\n`,
      );
    process.stdout.write(`saved ${path} in ${profile.seconds.toFixed(0)} s\n`);
    return 0;
  } finally {
    await model.decoder.release();
  }
}

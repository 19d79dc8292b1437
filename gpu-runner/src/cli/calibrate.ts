/** `epicache calibrate`: measure the model's layer sensitivity and save it next to the model. */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { EpicacheError } from "@epicache/shared";
import { calibrate } from "../episodes";
import { NUMERICS, openChatModel } from "../model";
import { requireModel } from "../models";
import { choices, enumOption, isPositiveInt, numberOption } from "./args";

export const usage = `\
  calibrate [--text FILE] [--budget 1024] [--block 512] [--sinks 128] [--numerics ${choices(NUMERICS, "fast")}] [--model PATH] [--json]
                                     measure layer sensitivity; saved next to the model
`;

export async function calibrateCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv, strict: true,
    options: {
      model: { type: "string" }, text: { type: "string" }, budget: { type: "string" }, block: { type: "string" }, sinks: { type: "string" },
      numerics: { type: "string" }, json: { type: "boolean", default: false },
    },
  });
  const numerics = enumOption("numerics", values.numerics, NUMERICS, "fast");
  const budget = numberOption("budget", values.budget, 1024, isPositiveInt);
  const blockSize = numberOption("block", values.block, 512, isPositiveInt);
  const sinks = numberOption("sinks", values.sinks, 128, isPositiveInt);
  let text: string | undefined;
  if (values.text !== undefined) {
    try {
      text = readFileSync(values.text, "utf8");
    } catch (e) {
      throw new EpicacheError("invalid_argument", `cannot read ${values.text}: ${(e as Error).message}`);
    }
  }
  const log = (m: string) => process.stderr.write(`${m}\n`);
  const model = await openChatModel(values.model ?? process.env.EPICACHE_CHAT_MODEL ?? requireModel("chat"), { numerics, log });
  try {
    const { profile, path } = await calibrate(model, { text, log, budget, blockSize, sinks });
    if (values.json) process.stdout.write(`${JSON.stringify(profile)}\n`);
    else {
      process.stdout.write(`layer sensitivity (1 − key cosine), ${profile.comparedTokens} tokens compared:\n`);
      profile.sensitivity.forEach((s, l) => process.stdout.write(`  layer ${String(l).padStart(2)}  ${s.toFixed(4)}  ${"▇".repeat(Math.round((s / Math.max(...profile.sensitivity, 1e-9)) * 40))}\n`));
      process.stdout.write(`saved ${path}\n`);
    }
    return 0;
  } finally {
    await model.decoder.release();
  }
}

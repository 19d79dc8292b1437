/** `epicache demo`: pulls the default models if needed, then answers one chat prompt. */
import { parseArgs } from "node:util";
import { generate, openChatModel } from "../runtime";
import { pullDefaults } from "../model-registry";

export const usage = `\
  demo                               a short generation on the default model
`;

export async function demoCommand(argv: string[]): Promise<number> {
  parseArgs({ args: argv, strict: true, options: {} }); // no options: refuse any
  const log = (m: string) => process.stderr.write(`${m}\n`);
  const [chat] = pullDefaults({ log });
  const model = await openChatModel(chat.path, { log });
  try {
    const question = "In one sentence: why do long conversations need a memory that stays small?";
    process.stdout.write(`> ${question}\n`);
    const prompt = model.tokenizer.encodeChat([{ role: "user", content: question }]);
    const started = performance.now();
    let n = 0;
    for await (const t of generate(model, prompt, { maxTokens: 64 })) {
      process.stdout.write(t.text);
      n++;
    }
    const s = (performance.now() - started) / 1000;
    process.stdout.write(
      `\n\n(${n} tokens in ${s.toFixed(2)} s on ${model.config.numLayers} layers, onnxruntime-node CPU)\n`,
    );
    return 0;
  } finally {
    await model.decoder.release();
  }
}

/** `epicache generate`: raw or chat completion on a chat model, streamed. */
import { parseArgs } from "node:util";
import { EpicacheError } from "@epicache/shared";
import { EMULATED_CPU_PATHS, generate, hostCpuPath, NUMERICS, openChatModel } from "../runtime";
import { requireModel } from "../model-registry";

import { choices, enumOption, numberOption as number } from "./args";

export const usage = `\
  generate --prompt TEXT [--max-tokens N] [--chat] [--temperature T] [--seed S] [--json] [--model PATH]
           [--numerics ${choices(NUMERICS)}]   PATH: a .gguf file or a Hugging Face checkpoint directory
                                     ggml (GGUF default): llama.cpp's arithmetic, token for token
                                     where its kernels are emulated (AMX CPUs; --json says cpuPath);
                                     exact: f32; fast: quantised matrices stay quantised (int8
                                     products), the fastest on CPU. Hugging Face checkpoints: exact
`;

export async function generateCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      prompt: { type: "string" },
      "max-tokens": { type: "string" },
      chat: { type: "boolean", default: false },
      temperature: { type: "string" },
      seed: { type: "string" },
      json: { type: "boolean", default: false },
      model: { type: "string" },
      numerics: { type: "string" },
    },
  });
  if (values.prompt === undefined)
    throw new EpicacheError("invalid_argument", "generate needs --prompt TEXT");
  const maxTokens = number(
    "max-tokens",
    values["max-tokens"],
    128,
    (n) => Number.isInteger(n) && n >= 0 && n <= 100_000,
  );
  const temperature = number("temperature", values.temperature, 0, (n) => n >= 0 && n <= 100);
  const seed = number("seed", values.seed, 0, (n) => Number.isInteger(n) && n >= 0);
  // Unset: the model's own default (ggml for GGUF files, exact for Hugging Face checkpoints).
  const numerics = enumOption("numerics", values.numerics, NUMERICS);
  const model = await openChatModel(
    values.model ?? process.env.EPICACHE_CHAT_MODEL ?? requireModel("chat"),
    {
      numerics,
      log: (m) => process.stderr.write(`${m}\n`),
    },
  );
  try {
    const prompt = values.chat
      ? model.tokenizer.encodeChat([{ role: "user", content: values.prompt }])
      : model.tokenizer.encodePrompt(values.prompt);
    if (prompt.length === 0) throw new EpicacheError("invalid_argument", "the prompt is empty");
    const tokens: number[] = [];
    let text = "";
    for await (const t of generate(model, prompt, { maxTokens, temperature, seed })) {
      tokens.push(t.id);
      text += t.text;
      if (!values.json) process.stdout.write(t.text);
    }
    if (values.json) {
      // cpuPath: the kernels llama.cpp takes on this CPU; `ggml` numerics match it token for token
      // only on the emulated paths (README, "Parity with llama.cpp").
      const cpuPath = hostCpuPath();
      const llamaCppIdentical = model.numerics === "ggml" && EMULATED_CPU_PATHS.includes(cpuPath);
      process.stdout.write(
        `${JSON.stringify({ text, tokens, promptTokens: prompt.length, numerics: model.numerics, cpuPath, llamaCppIdentical })}\n`,
      );
    } else process.stdout.write("\n");
    return 0;
  } finally {
    await model.decoder.release();
  }
}

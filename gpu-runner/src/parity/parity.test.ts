import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openChatModel, type ChatModel } from "../model";
import { NEEDS_PULL, pulledModel } from "../testing";
import { PARITY_PROMPTS, runParity, type ParityReport } from "./parity";

/**
 * The lowest number of the 10 parity prompts whose 48 greedy tokens must equal llama.cpp's. The
 * issue's target is 9; see README "Parity with llama.cpp" for where the runtime stands and why.
 */
const PARITY_FLOOR = 9;

const path = pulledModel("chat");

describe.skipIf(!path)(`parity with llama.cpp on SmolLM2-135M-Instruct Q4_1 ${NEEDS_PULL}`, () => {
  let model: ChatModel;
  let report: ParityReport;
  // Both runtimes generate 10 × 48 tokens: about 2 minutes alone on 2 cores, more on a busy machine.
  beforeAll(async () => {
    model = await openChatModel(path as string);
    report = await runParity(model);
  }, 900_000);
  afterAll(async () => {
    await model?.decoder.release();
  });

  it("tokenizes every sample exactly as llama.cpp, with and without special tokens", () => {
    const differing = report.tokenizer.filter((t) => !t.identical).map((t) => `${JSON.stringify(t.text)} special=${t.special}`);
    expect(differing).toEqual([]);
  });

  it(`generates llama.cpp's 48 greedy tokens for at least ${PARITY_FLOOR} of ${PARITY_PROMPTS.length} prompts`, () => {
    expect(report.identical).toBeGreaterThanOrEqual(PARITY_FLOOR);
  });

  it("agrees with llama.cpp on the first generated token of every prompt but at most one", () => {
    const firstTokenMisses = report.prompts.filter((p) => p.firstDiff === 0).length;
    expect(firstTokenMisses).toBeLessThanOrEqual(1);
  });
});

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openGguf } from "../gguf";
import { configFromGguf, NUMERICS, openChatModel, type ChatModel, type Numerics } from "../runtime";
import { ggufWeights } from "../runtime/weights";
import { keptWeights, NEEDS_PULL, pulledModel, referenceForward } from "../testing";
import { maxProbDiff, ourNextToken, softmax, top } from "./next-token";
import { promptIds, REFERENCE_BOUND, REFERENCE_PROMPTS } from "./parity";

/**
 * The test that says the runtime computes the model: on the real SmolLM2 weights, the next-token
 * distribution after each prompt from every numerics against a float64 forward pass written for
 * clarity (`testing/reference.ts`), independent of onnxruntime and of the CPU's kernels. `exact` must
 * agree to 1e-5 in probability; `fast` and `ggml` quantise activations to 8 bits as llama.cpp does and
 * are held to the bounds measured for them (README, "Parity with llama.cpp").
 */
const path = pulledModel("chat");

describe.skipIf(!path)(
  `SmolLM2-135M-Instruct Q4_1 against the float64 reference ${NEEDS_PULL}`,
  () => {
    let prompts: number[][];
    let reference: Float64Array[];
    // About a minute: the reference reads each weight row once for all tokens of a prompt.
    beforeAll(async () => {
      const file = openGguf(path as string);
      try {
        const weights = keptWeights(ggufWeights(file, configFromGguf(file), "reference"));
        const model = await openChatModel(path as string, { numerics: "exact" });
        prompts = REFERENCE_PROMPTS.map((p) => promptIds(model, p));
        await model.decoder.release();
        reference = prompts.map((ids) =>
          softmax(referenceForward(weights, ids, undefined, 0, [ids.length - 1]).logits[0]),
        );
      } finally {
        file.close();
      }
    }, 900_000);

    describe.each(NUMERICS.map((n) => [n]))("%s numerics", (numerics: Numerics) => {
      let model: ChatModel;
      let diffs: number[];
      let tops: boolean[];
      beforeAll(async () => {
        model = await openChatModel(path as string, { numerics });
        diffs = [];
        tops = [];
        for (const [i, ids] of prompts.entries()) {
          const p = await ourNextToken(model, ids);
          diffs.push(maxProbDiff(p, reference[i]));
          tops.push(top(p) === top(reference[i]));
        }
      }, 900_000);
      afterAll(async () => {
        await model?.decoder.release();
      });

      it(`is within ${REFERENCE_BOUND[numerics].toExponential(0)} of the reference's next-token probabilities after every prompt`, () => {
        const worst = Math.max(...diffs);
        expect(
          worst,
          `largest difference per prompt: ${diffs.map((d) => d.toExponential(2)).join(", ")}`,
        ).toBeLessThanOrEqual(REFERENCE_BOUND[numerics]);
      });

      // 8-bit activations (fast, ggml, and llama.cpp itself) turn near ties either way: only the f32
      // numerics must pick the reference's token every time.
      if (numerics === "exact") {
        it("picks the reference's most likely next token after every prompt", () => {
          expect(tops.every(Boolean), `top token agrees: ${tops.join(", ")}`).toBe(true);
        });
      }
    });
  },
);

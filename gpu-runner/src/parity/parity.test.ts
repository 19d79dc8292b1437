import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openChatModel, type ChatModel } from "../runtime";
import { NEEDS_PULL, pulledModel } from "../testing";
import { cpuPathOf, hostCpuPath } from "../runtime/cpu-path";
import { NEXT_TOKEN_BOUND, PARITY_PROMPTS, runParity, type ParityReport } from "./parity";

/**
 * Where `ggml` numerics emulate llama.cpp's CPU path, the lowest number of the 10 parity prompts whose
 * 48 greedy tokens must equal llama.cpp's. Elsewhere greedy agreement is printed, not asserted: the
 * two runtimes' next-token distributions are held to {@link NEXT_TOKEN_BOUND} instead (README,
 * "Parity with llama.cpp").
 */
const PARITY_FLOOR = 9;

describe("cpuPathOf", () => {
  it("reads llama.cpp's system info lines", () => {
    const amx =
      "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | AVX512 = 1 | AVX512_VNNI = 1 | AMX_INT8 = 1 | LLAMAFILE = 1 | REPACK = 1 |";
    expect(cpuPathOf(amx)).toBe("amx");
    expect(cpuPathOf(amx.replace("AMX_INT8 = 1", "AMX_INT8 = 0"))).toBe("avx512");
    expect(
      cpuPathOf(
        "CPU : SSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | LLAMAFILE = 1 | REPACK = 1 |",
      ),
    ).toBe("avx2");
    expect(cpuPathOf("CPU : NEON = 1 | ARM_FMA = 1 | FP16_VA = 1 |")).toBe("other");
    expect(cpuPathOf("")).toBe("other");
  });

  it("reads the same paths from a CPU's flags", () => {
    const info = (flags: string) =>
      `processor\t: 0\nflags\t\t: fpu sse sse2 ${flags}\n\nprocessor\t: 1\n`;
    expect(
      hostCpuPath(
        info("avx avx2 fma f16c avx512f avx512bw avx512vl avx512_vnni amx_tile amx_int8 amx_bf16"),
      ),
    ).toBe("amx");
    expect(hostCpuPath(info("avx avx2 fma f16c avx512f avx512bw avx512vl avx512_vnni"))).toBe(
      "avx512",
    );
    expect(hostCpuPath(info("avx avx2 fma f16c bmi2"))).toBe("avx2");
    expect(hostCpuPath(info("neon"))).toBe("other");
    expect(hostCpuPath("")).toBe("other");
  });
});

const path = pulledModel("chat");

describe.skipIf(!path)(`parity with llama.cpp on SmolLM2-135M-Instruct Q4_1 ${NEEDS_PULL}`, () => {
  let model: ChatModel;
  let report: ParityReport;
  // Both runtimes generate 10 × 48 tokens: about 2 minutes alone on 2 cores, more on a busy machine.
  beforeAll(async () => {
    model = await openChatModel(path as string, { numerics: "ggml" });
    report = await runParity(model);
    const firstDiffs = report.prompts.map((p) => (p.identical ? "=" : p.firstDiff)).join(" ");
    console.log(
      `parity on llama.cpp's ${report.cpuPath} path: ${report.identical}/${PARITY_PROMPTS.length} identical over 48 tokens (first differences: ${firstDiffs}), largest next-token difference ${report.maxNextTokenDiff.toExponential(2)}`,
    );
  }, 900_000);
  afterAll(async () => {
    await model?.decoder.release();
  });

  it("finds from the CPU's flags the path llama.cpp reports", () => {
    expect(hostCpuPath()).toBe(report.cpuPath);
  });

  it("tokenizes every sample exactly as llama.cpp, with and without special tokens", () => {
    const differing = report.tokenizer
      .filter((t) => !t.identical)
      .map((t) => `${JSON.stringify(t.text)} special=${t.special}`);
    expect(differing).toEqual([]);
  });

  it(`on the emulated CPU path, generates llama.cpp's 48 greedy tokens for at least ${PARITY_FLOOR} of ${PARITY_PROMPTS.length} prompts`, (ctx) => {
    if (!report.emulated)
      ctx.skip(
        `llama.cpp takes its ${report.cpuPath} path on this CPU, which ggml numerics do not emulate: greedy agreement ${report.identical}/${PARITY_PROMPTS.length}, distributions checked below`,
      );
    expect(report.identical).toBeGreaterThanOrEqual(PARITY_FLOOR);
  });

  it("agrees with llama.cpp's next-token distribution after every prompt within the bound of its path", () => {
    const bound = report.emulated ? NEXT_TOKEN_BOUND.emulated : NEXT_TOKEN_BOUND.ggml;
    const diffs = report.prompts.map((p) => p.nextTokenDiff.toExponential(2)).join(", ");
    expect(report.maxNextTokenDiff, `per prompt: ${diffs}`).toBeLessThanOrEqual(bound);
  });
});

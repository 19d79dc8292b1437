import { describe, expect, it } from "vitest";
import { formatSeconds, Progress } from "./progress";

/** A Progress writing into an array, with a clock the test moves. */
function harness(tty: boolean) {
  const lines: string[] = [];
  let t = 0;
  const progress = new Progress("build", {
    out: { write: (s: string) => lines.push(s) },
    tty,
    everyMs: 10_000,
    now: () => t,
  });
  return { lines, progress, advance: (ms: number) => (t += ms) };
}

describe("progress of long commands", () => {
  it("without a terminal: a line per stage, then at most one every 10 s, with counts and the stage's ETA", () => {
    const { lines, progress, advance } = harness(false);
    progress.stage("block-wise prefill");
    for (let block = 1; block <= 40; block++) {
      advance(1000);
      progress.update(block, 40, "blocks");
    }
    expect(lines[0]).toBe("build: block-wise prefill\n");
    // 40 s of work: lines at 10, 20, 30 s and the last block's.
    expect(lines.slice(1)).toEqual([
      "build block-wise prefill: 25%, 10/40 blocks, ETA 30 s\n",
      "build block-wise prefill: 50%, 20/40 blocks, ETA 20 s\n",
      "build block-wise prefill: 75%, 30/40 blocks, ETA 10 s\n",
      "build block-wise prefill: 100%, 40/40 blocks\n",
    ]);
  });

  it("a stage entered again goes on with its clock and prints no second line", () => {
    const { lines, progress, advance } = harness(false);
    progress.stage("prefill");
    advance(20_000);
    progress.update(1, 4, "episodes");
    progress.stage("write");
    advance(1000);
    progress.stage("prefill");
    advance(9000);
    progress.update(2, 4, "episodes");
    // 30 s for 2 of 4: 30 s left, measured from the stage's first start.
    expect(lines).toEqual([
      "build: prefill\n",
      "build prefill: 25%, 1/4 episodes, ETA 1 min 0 s\n",
      "build: write\n",
      "build prefill: 50%, 2/4 episodes, ETA 30 s\n",
    ]);
  });

  it("on a terminal: one line redrawn in place, cleared before a message and at the end", () => {
    const { lines, progress, advance } = harness(true);
    progress.stage("embedding the windows");
    advance(2000);
    progress.update(1, 2, "batches");
    progress.line("a message");
    progress.update(2, 2, "batches");
    progress.done();
    // The line starts with a carriage return and the terminal's erase-line (ESC [K).
    expect(lines[1].startsWith("\r\x1b[K")).toBe(true);
    expect(lines[1].slice(4)).toMatch(
      /^build embedding the windows █{15}░{15} {2}50% {2}1\/2 batches, ETA 2 s$/,
    );
    expect(lines[2]).toBe("\r\x1b[Ka message\n");
    expect(lines[3]).toMatch(/100% {2}2\/2 batches$/);
    expect(lines[4]).toBe("\r\x1b[K");
  });

  it("formats durations a person reads", () => {
    expect(formatSeconds(45)).toBe("45 s");
    expect(formatSeconds(200)).toBe("3 min 20 s");
    expect(formatSeconds(3720)).toBe("1 h 2 min");
  });
});

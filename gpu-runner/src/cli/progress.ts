/**
 * Progress of long commands on stderr. On a terminal, one line redrawn in place: a bar, the count,
 * the ETA. Elsewhere (a log file, CI, a pipe), a line when a stage starts and then at most one every
 * `everyMs` with the same counts and ETA, so a log says where a long run stands without a line per
 * step. The ETA is the stage's own pace so far: time elapsed over units done, times units left.
 *
 * @example
 * ```ts
 * const progress = new Progress("build");
 * progress.stage("prefill");
 * progress.update(3, 40, "episode 1/4");   // build prefill ███░░…  8%  3/40 episode 1/4, ETA 2 min 10 s
 * progress.done();
 * ```
 */
export interface ProgressOptions {
  /** Where lines go; default process.stderr. */
  out?: { write(s: string): unknown; isTTY?: boolean };
  /** Redraw in place (a terminal); default out.isTTY. */
  tty?: boolean;
  /** Without a terminal, the least time between two lines of one stage. Default 10 s. */
  everyMs?: number;
  /** Milliseconds; default performance.now. */
  now?: () => number;
}

export class Progress {
  private readonly out: NonNullable<ProgressOptions["out"]>;
  private readonly tty: boolean;
  private readonly everyMs: number;
  private readonly now: () => number;
  private stageName = "";
  private stageStart = 0;
  private readonly started = new Map<string, number>();
  private lastLine = -Infinity;
  /** A redrawn line is on screen: the next plain line clears it first. */
  private drawn = false;

  constructor(
    private readonly task: string,
    opts: ProgressOptions = {},
  ) {
    this.out = opts.out ?? process.stderr;
    this.tty = opts.tty ?? this.out.isTTY === true;
    this.everyMs = opts.everyMs ?? 10_000;
    this.now = opts.now ?? (() => performance.now());
  }

  /**
   * A stage starts: a line of its own. A stage entered again (prefill, then writing, then the next
   * episode's prefill) goes on where it was: its clock keeps running, and no new line.
   */
  stage(name: string, detail?: string): void {
    this.stageName = name;
    const started = this.started.get(name);
    if (started !== undefined) {
      this.stageStart = started;
      return;
    }
    this.stageStart = this.now();
    this.started.set(name, this.stageStart);
    this.lastLine = this.stageStart;
    this.line(`${this.task}: ${name}${detail ? ` (${detail})` : ""}`);
  }

  /** `done` of `total` units of the current stage. */
  update(done: number, total: number, detail?: string): void {
    const now = this.now();
    const share = total > 0 ? Math.min(1, done / total) : 0;
    const elapsed = (now - this.stageStart) / 1000;
    const eta =
      done > 0 && done < total ? `, ETA ${formatSeconds((elapsed / done) * (total - done))}` : "";
    const text = `${done}/${total}${detail ? ` ${detail}` : ""}${eta}`;
    if (this.tty) {
      const bar = "█".repeat(Math.round(share * 30)).padEnd(30, "░");
      this.out.write(
        `\r\x1b[K${this.task} ${this.stageName} ${bar} ${(share * 100).toFixed(0).padStart(3)}%  ${text}`,
      );
      this.drawn = true;
    } else if (now - this.lastLine >= this.everyMs || done === total) {
      this.lastLine = now;
      this.out.write(`${this.task} ${this.stageName}: ${(share * 100).toFixed(0)}%, ${text}\n`);
    }
  }

  /** A message between progress lines (the redrawn line cleared first). */
  line(message: string): void {
    this.out.write(`${this.drawn ? "\r\x1b[K" : ""}${message}\n`);
    this.drawn = false;
  }

  /** The work is over: a redrawn line is cleared. */
  done(): void {
    if (this.drawn) this.out.write("\r\x1b[K");
    this.drawn = false;
  }
}

/** "1 h 2 min", "3 min 20 s", "45 s". */
export function formatSeconds(s: number): string {
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (h > 0) return `${h} h ${m} min`;
  return m > 0 ? `${m} min ${Math.round(s % 60)} s` : `${Math.round(s)} s`;
}

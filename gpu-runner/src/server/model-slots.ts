/**
 * Turns at the model. A runner executes at most `size` model calls at once (one by default: two
 * decoders on two cores only slow each other). Waiters are served by priority (a question before an
 * embedding before a rebuild), first come first served within one. A rebuild holds its slot for the
 * whole build but calls {@link ModelSlots.pause} before each model call, handing the slot to anyone
 * more urgent who waits: a question waits for one model call of a build, never for the build.
 */
export type Priority = "generate" | "embed" | "rebuild";

const RANK: Record<Priority, number> = { generate: 0, embed: 1, rebuild: 2 };

interface Waiter {
  rank: number;
  seq: number;
  grant: () => void;
}

export class ModelSlots {
  private busy = 0;
  private seq = 0;
  private readonly waiters: Waiter[] = [];

  constructor(readonly size: number) {
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`model slots: ${size}`);
  }

  /** Calls waiting for a slot. */
  get waiting(): number {
    return this.waiters.length;
  }

  /** Slots in use. */
  get inUse(): number {
    return this.busy;
  }

  /** Runs `f` in a slot. */
  async run<T>(priority: Priority, f: () => Promise<T>): Promise<T> {
    await this.acquire(priority);
    try {
      return await f();
    } finally {
      this.release();
    }
  }

  /**
   * For a holder of `priority`: if a more urgent call waits, give the slot up to it and wait for a
   * turn again; otherwise return at once.
   */
  async pause(priority: Priority): Promise<void> {
    if (!this.waiters.some((w) => w.rank < RANK[priority])) return;
    this.release();
    await this.acquire(priority);
  }

  private acquire(priority: Priority): Promise<void> {
    if (this.busy < this.size && this.waiters.length === 0) {
      this.busy++;
      return Promise.resolve();
    }
    return new Promise<void>((grant) => {
      this.waiters.push({ rank: RANK[priority], seq: this.seq++, grant });
      this.waiters.sort((a, b) => a.rank - b.rank || a.seq - b.seq);
    });
  }

  private release(): void {
    const next = this.waiters.shift();
    if (next === undefined) {
      this.busy--;
      return;
    }
    next.grant(); // the slot passes straight to the next waiter
  }
}

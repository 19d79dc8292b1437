/**
 * Rebuild jobs: a store of their statuses (kept after they finish, for `GET /v1/jobs/{id}`, up to a
 * bound) and a queue that runs them one after another.
 */
import { EpicacheError, type JobStatus, type RebuildRequest } from "@epicache/shared";

export interface Job {
  status: JobStatus;
  request: RebuildRequest;
}

/** Job statuses by id; the oldest finished ones are forgotten past `keep`. */
export class JobStore {
  private readonly jobs = new Map<string, Job>();

  constructor(private readonly keep = 1000) {}

  add(job: Job): void {
    this.jobs.set(job.status.id, job);
    const finished = [...this.jobs.values()].filter((j) => j.status.finishedAt !== null);
    for (const j of finished.slice(0, Math.max(0, finished.length - this.keep)))
      this.jobs.delete(j.status.id);
  }

  get(id: string): Job | undefined {
    return this.jobs.get(id);
  }

  /** A copy of the job's status; `not_found` when there is none. */
  status(id: string): JobStatus {
    const job = this.jobs.get(id);
    if (job === undefined) throw new EpicacheError("not_found", `no job ${id} on this runner`);
    return { ...job.status };
  }
}

/** Runs queued jobs one at a time, in order, with `run`; at most `limit` queued or running. */
export class JobQueue {
  private readonly queue: Job[] = [];
  private working = false;
  private idle: Promise<void> = Promise.resolve();

  constructor(
    private readonly limit: number,
    private readonly run: (job: Job) => Promise<void>,
  ) {}

  /** Jobs queued or running. */
  get depth(): number {
    return this.queue.length + (this.working ? 1 : 0);
  }

  /** Queues `job`; `queue_full` at the limit. */
  push(job: Job): void {
    if (this.depth >= this.limit)
      throw new EpicacheError(
        "queue_full",
        `${this.limit} rebuild jobs are queued or running; retry later`,
      );
    this.queue.push(job);
    void this.work();
  }

  /** Resolves when no job is queued or running (tests, shutdown). */
  async drain(): Promise<void> {
    while (this.working || this.queue.length > 0) await this.idle;
  }

  private async work(): Promise<void> {
    if (this.working) return;
    this.working = true;
    let done: () => void = () => undefined;
    this.idle = new Promise((r) => (done = r));
    try {
      for (let job = this.queue.shift(); job !== undefined; job = this.queue.shift())
        await this.run(job);
    } finally {
      this.working = false;
      done();
    }
  }
}

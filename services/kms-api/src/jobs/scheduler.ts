// Runs the background jobs in every replica, one pass at a time (a slow pass is never overlapped).
import type { Services } from "../context";
import { describeError } from "@kms/telemetry";
import { destroyDueKeys } from "./deletion";
import { expireImportedMaterial } from "./material-expiry";
import { rotateDueKeys } from "./rotation";

export interface Job {
  name: string;
  run(s: Services): Promise<unknown>;
}

export const JOBS: readonly Job[] = [
  { name: "rotation", run: rotateDueKeys },
  { name: "deletion", run: destroyDueKeys },
  { name: "material-expiry", run: expireImportedMaterial },
];

export class JobScheduler {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(
    private readonly services: Services,
    private readonly intervalMs: number,
    private readonly jobs: readonly Job[] = JOBS,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.runOnce(), this.intervalMs);
    this.timer.unref();
  }

  /** One pass of every job; errors are logged and the next pass tries again. */
  runOnce(): Promise<void> {
    this.running ??= (async () => {
      for (const job of this.jobs) {
        try {
          await job.run(this.services);
        } catch (err) {
          this.services.log.warn("background job failed", { job: job.name, ...describeError(err) });
        }
      }
    })().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.running;
  }
}

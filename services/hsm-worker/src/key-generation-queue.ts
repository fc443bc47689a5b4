// RSA key generation takes seconds of CPU (node:crypto) or of HSM time on a session and a libuv thread
// (C_GenerateKeyPair). Unbounded, a few CreateKey calls hold every session or thread and everyone else's
// Encrypt waits behind them. Here they run at most `concurrency` at a time (config keeps it below the
// session pool's size); up to `queue` more wait in FIFO order, and one more is refused with
// RESOURCE_EXHAUSTED, Throttling: a client backs off from it, where UNAVAILABLE is retried at once.
// Other key specs take milliseconds, as an Encrypt does, and do not queue.
import type { KeyGenerationConfig } from "@kms/config";
import { ErrorCode, KmsError } from "@kms/errors";
import { kmsResources } from "@kms/proto";

const SLOW_SPECS: ReadonlySet<kmsResources.KeySpec> = new Set([
  kmsResources.KeySpec.RSA_2048,
  kmsResources.KeySpec.RSA_3072,
  kmsResources.KeySpec.RSA_4096,
]);

/** True for the key specs whose generation goes through the queue. */
export function isSlowGeneration(keySpec: kmsResources.KeySpec): boolean {
  return SLOW_SPECS.has(keySpec);
}

interface Waiter {
  start: () => void;
  cancel: () => void;
}

export class KeyGenerationQueue {
  private running = 0;
  private readonly waiters: Waiter[] = [];

  constructor(private readonly limits: KeyGenerationConfig) {}

  /** Generations running now. */
  get active(): number {
    return this.running;
  }

  /** Generations waiting for their turn now. */
  get waiting(): number {
    return this.waiters.length;
  }

  /**
   * Runs `generate` when a slot is free. `signal` aborts a generation that is still waiting (its caller
   * has gone: deadline passed or cancelled), so that nobody's turn goes to a key nobody will receive.
   */
  async run<T>(generate: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    await this.turn(signal);
    try {
      return await generate();
    } finally {
      this.done();
    }
  }

  private turn(signal: AbortSignal | undefined): Promise<void> | void {
    if (signal?.aborted) throw cancelled();
    if (this.running < this.limits.concurrency) {
      this.running++;
      return;
    }
    if (this.waiters.length >= this.limits.queue) {
      throw new KmsError(
        ErrorCode.Throttled,
        `key generation is busy (${this.running} running, ${this.waiters.length} waiting); retry later`,
      );
    }
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => waiter.cancel();
      const waiter: Waiter = {
        // done() hands its slot over: `running` is unchanged.
        start: () => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        },
        cancel: () => {
          const i = this.waiters.indexOf(waiter);
          if (i >= 0) this.waiters.splice(i, 1);
          reject(cancelled());
        },
      };
      this.waiters.push(waiter);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  private done(): void {
    const next = this.waiters.shift();
    if (next !== undefined) next.start();
    else this.running--;
  }
}

/** The caller is gone, so nobody reads this; UNAVAILABLE as the error code's status (a retry is safe). */
function cancelled(): KmsError {
  return new KmsError(ErrorCode.Unavailable, "key generation cancelled: the caller has gone");
}

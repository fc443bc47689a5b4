// Retries with exponential backoff and full jitter (each wait is uniform in [0, cap]), on UNAVAILABLE
// only: the service answers UNAVAILABLE exactly when retrying is safe (worker or database unreachable),
// and every other status would fail again the same way.
import { status } from "@grpc/grpc-js";
import { KmsClientError } from "./errors";

export interface RetryOptions {
  /** Further attempts after the first. Default 3. */
  retries: number;
  /** Cap of the first wait. Default 100 ms; doubles per attempt. */
  baseDelayMs: number;
  /** Largest cap. Default 2000 ms. */
  maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryOptions = { retries: 3, baseDelayMs: 100, maxDelayMs: 2000 };

export function isRetryable(err: unknown): boolean {
  return err instanceof KmsClientError && err.code === status.UNAVAILABLE;
}

/** The wait before retry number `attempt` (1-based). */
export function backoffDelay(attempt: number, options: RetryOptions, random: () => number = Math.random): number {
  const cap = Math.min(options.maxDelayMs, options.baseDelayMs * 2 ** (attempt - 1));
  return Math.floor(random() * cap);
}

export async function withRetry<T>(
  call: () => Promise<T>,
  options: RetryOptions,
  sleep: (ms: number) => Promise<void> = (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (err) {
      if (attempt > options.retries || !isRetryable(err)) throw err;
      await sleep(backoffDelay(attempt, options));
    }
  }
}

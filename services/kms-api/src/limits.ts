// Overload protection, so that one caller cannot starve the others:
//   - a token bucket per principal (KMS_RATE_LIMIT_PER_SECOND refill, KMS_RATE_LIMIT_BURST size), taken
//     right after authentication in rpc.ts; over it: RESOURCE_EXHAUSTED with kms-error-code Throttling,
//     answered only after rejectDelayMs: a client that retries at once would otherwise spin, and its
//     rejections (each still authenticated and audited) would take the CPU its limit was to protect;
//   - the largest request message (KMS_MAX_REQUEST_BYTES) and the concurrent calls per connection
//     (KMS_MAX_CONCURRENT_STREAMS), which grpc-js enforces itself: serverOptions() gives main.ts its options.
import { status } from "@grpc/grpc-js";
import type { ServerOptions } from "@grpc/grpc-js";
import type { LimitsConfig } from "@kms/config";
import { ErrorCode, KmsError } from "@kms/errors";

/** Principals whose bucket is kept; beyond it the fullest (idle) buckets are forgotten first. */
const MAX_TRACKED_PRINCIPALS = 100_000;

interface Bucket {
  tokens: number;
  /** Milliseconds (monotonic clock) of the last refill. */
  at: number;
}

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    private readonly ratePerSecond: number,
    private readonly burst: number,
    /** How long rpc.ts holds a throttled call before answering it. */
    readonly rejectDelayMs = 0,
    /** Monotonic milliseconds; tests inject their own. */
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Takes one request from `principal`'s bucket, or throws RESOURCE_EXHAUSTED (Throttling). */
  take(principal: string): void {
    const now = this.now();
    let bucket = this.buckets.get(principal);
    if (bucket === undefined) {
      if (this.buckets.size >= MAX_TRACKED_PRINCIPALS) this.forgetIdle(now);
      bucket = { tokens: this.burst, at: now };
      this.buckets.set(principal, bucket);
    } else {
      bucket.tokens = Math.min(this.burst, bucket.tokens + ((now - bucket.at) / 1000) * this.ratePerSecond);
      bucket.at = now;
    }
    if (bucket.tokens < 1) {
      throw new KmsError(status.RESOURCE_EXHAUSTED, ErrorCode.Throttled, `rate limit of ${this.ratePerSecond} requests per second exceeded; retry later`);
    }
    bucket.tokens -= 1;
  }

  /** Buckets that have refilled completely carry no state worth keeping. */
  private forgetIdle(now: number): void {
    for (const [principal, b] of this.buckets) {
      if (b.tokens + ((now - b.at) / 1000) * this.ratePerSecond >= this.burst) this.buckets.delete(principal);
    }
    // Everyone is busy: drop the oldest entries rather than grow without bound.
    for (const principal of this.buckets.keys()) {
      if (this.buckets.size < MAX_TRACKED_PRINCIPALS) break;
      this.buckets.delete(principal);
    }
  }
}

/**
 * How long rpc.ts holds a throttled call (the header says why): the configured delay ±50 %, so that a throttled
 * client's calls do not come back in lockstep, but never so long that the caller's deadline passes
 * first: it must see RESOURCE_EXHAUSTED, not DEADLINE_EXCEEDED.
 */
export function throttleHoldMs(delayMs: number, deadline: Date | undefined, now = Date.now()): number {
  const jittered = delayMs * (0.5 + Math.random());
  if (deadline === undefined) return jittered;
  // A quarter of the time left stays for the audit row and the answer.
  return Math.max(0, Math.min(jittered, (deadline.getTime() - now) * 0.75));
}

/** The grpc-js server options that carry the size and concurrency caps. */
export function serverOptions(limits: Pick<LimitsConfig, "maxRequestBytes" | "maxConcurrentStreams">): ServerOptions {
  return {
    "grpc.max_receive_message_length": limits.maxRequestBytes,
    "grpc.max_concurrent_streams": limits.maxConcurrentStreams,
  };
}

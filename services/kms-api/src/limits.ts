// Overload protection, so that one caller cannot starve the others:
//   - a token bucket per principal (KMS_RATE_LIMIT_PER_SECOND refill, KMS_RATE_LIMIT_BURST size), taken
//     right after authentication in the pipeline (pipeline/pipeline.ts); over it: RESOURCE_EXHAUSTED with kms-error-code Throttling,
//     answered only after rejectDelayMs: a client that retries at once would otherwise spin, and its
//     rejections (each still authenticated, and counted by the refusal audit) would take the CPU its limit
//     was to protect. (Callers that fail to authenticate are throttled per peer before that: peer-throttle.ts);
//   - a batch call takes one token per item (chargeBatch, after the request is parsed): all of them or, when
//     the bucket does not hold them, none (Throttling; the call's own token stays spent), so a batch never
//     gets more done on one token than single calls would, and a refused batch leaves the rest for the
//     caller's smaller calls. A batch with more items than the bucket's size could never fit:
//     INVALID_ARGUMENT naming items;
//   - while a principal is being throttled (and for FLOODER_WINDOW_MS after), at most
//     KMS_RATE_LIMIT_THROTTLED_IN_FLIGHT of its calls are processed at once; the rest wait their turn. The
//     bucket alone lets a flooder's closed-loop clients spend each refill all together: tens of calls land on
//     the worker and the audit writer as one burst, and another caller's call that arrives then waits behind
//     all of them (test/reliability/flood.ts with FLOOD_DEBUG=1). Callers within their rate never wait;
//   - the largest request message (KMS_MAX_REQUEST_BYTES) and the concurrent calls per connection
//     (KMS_MAX_CONCURRENT_STREAMS), which grpc-js enforces itself: serverOptions() gives main.ts its options.
import type { ServerOptions } from "@grpc/grpc-js";
import type { LimitsConfig } from "@kms/config";
import { ErrorCode, KmsError, invalidArgument } from "@kms/errors";

/** Principals whose bucket is kept; beyond it the fullest (idle) buckets are forgotten first. */
const MAX_TRACKED_PRINCIPALS = 100_000;
/** How long after its last throttled call a principal still counts as flooding (its calls in flight capped). */
const FLOODER_WINDOW_MS = 2000;
/** Calls of one flooding principal that may wait for a slot; beyond: Throttling at once. */
const MAX_WAITING_PER_PRINCIPAL = 1024;

/** A call waiting for its principal's turn: called when the turn comes. */
type Waiter = () => void;

interface Bucket {
  tokens: number;
  /** Milliseconds (monotonic clock) of the last refill. */
  at: number;
  /** Monotonic milliseconds of its last throttled call (-Infinity: never). */
  throttledAt: number;
  /** Calls admitted and not yet released. */
  inFlight: number;
  /** Calls waiting for a slot while the principal floods (FIFO). */
  waiting: Waiter[];
}

/** Ends an admitted call's turn (idempotent). */
export type Release = () => void;

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    private readonly limits: Pick<LimitsConfig, "ratePerSecond" | "burst" | "rejectDelayMs" | "throttledMaxInFlight">,
    /** Monotonic milliseconds; tests inject their own. */
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** How long the pipeline holds a throttled call before answering it. */
  get rejectDelayMs(): number {
    return this.limits.rejectDelayMs;
  }

  /**
   * Takes a token (or throws Throttling), then gives the call its turn: at once, unless the principal has
   * been throttled lately and already has its share in progress; then a promise that resolves when one of
   * its earlier calls releases, or rejects with Throttling when `deadline` is about to pass (the caller must
   * see RESOURCE_EXHAUSTED, not DEADLINE_EXCEEDED). The caller must call the Release when its work is done.
   */
  admit(principal: string, deadline?: Date): Release | Promise<Release> {
    const bucket = this.takeToken(principal);
    const flooding = this.now() - bucket.throttledAt < FLOODER_WINDOW_MS;
    if (!flooding || bucket.inFlight < this.limits.throttledMaxInFlight) {
      bucket.inFlight++;
      return this.releaseOf(bucket);
    }
    if (bucket.waiting.length >= MAX_WAITING_PER_PRINCIPAL) throw this.throttled();
    return new Promise<Release>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const waiter: Waiter = () => {
        clearTimeout(timer);
        resolve(this.releaseOf(bucket));
      };
      if (deadline !== undefined) {
        // As throttleHoldMs: a quarter of the time left stays for the audit row and the answer.
        timer = setTimeout(() => {
          bucket.waiting.splice(bucket.waiting.indexOf(waiter), 1);
          reject(this.throttled());
        }, Math.max(0, (deadline.getTime() - Date.now()) * 0.75));
      }
      bucket.waiting.push(waiter);
    });
  }

  /**
   * A batch of `items` items counts one token per item; admit() took the call's first. Takes the other
   * items - 1 at once, or none: Throttling when the bucket does not hold them, INVALID_ARGUMENT when it
   * never could (more items than KMS_RATE_LIMIT_BURST).
   */
  chargeBatch(principal: string, items: number): void {
    if (items <= 1) return;
    if (items > this.limits.burst) {
      throw invalidArgument("items", `must hold at most ${this.limits.burst} items: each counts against the rate limit, whose burst is ${this.limits.burst}; got ${items}`);
    }
    const bucket = this.refilled(principal);
    if (bucket.tokens < items - 1) {
      bucket.throttledAt = this.now();
      throw new KmsError(ErrorCode.Throttled, `rate limit of ${this.limits.ratePerSecond} requests per second exceeded: a batch counts one per item, and ${items} do not fit now; retry later or send fewer`);
    }
    bucket.tokens -= items - 1;
  }

  private releaseOf(bucket: Bucket): Release {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      bucket.inFlight--;
      this.admitWaiting(bucket);
    };
  }

  /** Lets waiting calls go, oldest first, while the principal is under its cap (or no longer flooding). */
  private admitWaiting(bucket: Bucket): void {
    const flooding = this.now() - bucket.throttledAt < FLOODER_WINDOW_MS;
    while (bucket.waiting.length > 0 && (!flooding || bucket.inFlight < this.limits.throttledMaxInFlight)) {
      bucket.inFlight++;
      bucket.waiting.shift()!();
    }
  }

  /** Takes one request from `principal`'s bucket, or throws RESOURCE_EXHAUSTED (Throttling). */
  private takeToken(principal: string): Bucket {
    const bucket = this.refilled(principal);
    if (bucket.tokens < 1) {
      bucket.throttledAt = bucket.at;
      throw this.throttled();
    }
    bucket.tokens -= 1;
    return bucket;
  }

  /** `principal`'s bucket (a full new one for a stranger), refilled up to now. */
  private refilled(principal: string): Bucket {
    const now = this.now();
    let bucket = this.buckets.get(principal);
    if (bucket === undefined) {
      if (this.buckets.size >= MAX_TRACKED_PRINCIPALS) this.forgetIdle(now);
      bucket = { tokens: this.limits.burst, at: now, throttledAt: -Infinity, inFlight: 0, waiting: [] };
      this.buckets.set(principal, bucket);
    } else {
      bucket.tokens = Math.min(this.limits.burst, bucket.tokens + ((now - bucket.at) / 1000) * this.limits.ratePerSecond);
      bucket.at = now;
    }
    return bucket;
  }

  private throttled(): KmsError {
    return new KmsError(ErrorCode.Throttled, `rate limit of ${this.limits.ratePerSecond} requests per second exceeded; retry later`);
  }

  /** Calls of `principal` in progress and waiting (tests, metrics). */
  load(principal: string): { inFlight: number; waiting: number } {
    const b = this.buckets.get(principal);
    return { inFlight: b?.inFlight ?? 0, waiting: b?.waiting.length ?? 0 };
  }

  /** Buckets that have refilled completely carry no state worth keeping. */
  private forgetIdle(now: number): void {
    for (const [principal, b] of this.buckets) {
      if (b.inFlight > 0) continue; // its releases still need it
      if (b.tokens + ((now - b.at) / 1000) * this.limits.ratePerSecond >= this.limits.burst) this.buckets.delete(principal);
    }
    // Everyone is busy: drop the oldest entries rather than grow without bound.
    for (const principal of this.buckets.keys()) {
      if (this.buckets.size < MAX_TRACKED_PRINCIPALS) break;
      this.buckets.delete(principal);
    }
  }
}

/**
 * How long the pipeline holds a throttled call (the header says why): the configured delay ±50 %, so that a throttled
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

import { status } from "@grpc/grpc-js";
import { loadApiConfig, loadWorkerConfig } from "@kms/config";
import { ErrorCode, KmsError } from "@kms/errors";
import { RateLimiter, serverOptions, throttleHoldMs } from "./limits";

function throttled(limiter: RateLimiter, principal: string): boolean {
  try {
    const turn = limiter.admit(principal);
    expect(turn).toBeInstanceOf(Function); // nobody here has been throttled with calls in flight
    (turn as () => void)();
    return false;
  } catch (err) {
    expect(err).toBeInstanceOf(KmsError);
    expect({ status: (err as KmsError).status, code: (err as KmsError).code, message: (err as KmsError).message }).toEqual({
      status: status.RESOURCE_EXHAUSTED,
      code: ErrorCode.Throttled,
      message: "rate limit of 10 requests per second exceeded; retry later",
    });
    return true;
  }
}

describe("RateLimiter", () => {
  it("allows the burst at once, then the rate, per principal", () => {
    let now = 0;
    const limiter = new RateLimiter({ ratePerSecond: 10, burst: 3, rejectDelayMs: 0, throttledMaxInFlight: 4 }, () => now);
    expect([1, 2, 3, 4].map(() => throttled(limiter, "a"))).toEqual([false, false, false, true]);
    // Another principal has a bucket of its own.
    expect(throttled(limiter, "b")).toBe(false);
    now += 100; // 10/s: one token back
    expect([throttled(limiter, "a"), throttled(limiter, "a")]).toEqual([false, true]);
    now += 10_000; // refills to the burst, no further
    expect([1, 2, 3, 4].map(() => throttled(limiter, "a"))).toEqual([false, false, false, true]);
  });
});

describe("RateLimiter.chargeBatch", () => {
  const limiter = (now: () => number) => new RateLimiter({ ratePerSecond: 10, burst: 20, rejectDelayMs: 0, throttledMaxInFlight: 4 }, now);
  const outcome = (f: () => void) => {
    try {
      f();
      return "OK";
    } catch (err) {
      const e = err as KmsError;
      return `${e.status} ${e.code} ${e.message}`;
    }
  };

  it("takes one token per item, all or none", () => {
    let now = 0;
    const l = limiter(() => now);
    (l.admit("a") as () => void)(); // the batch's own token
    expect(outcome(() => l.chargeBatch("a", 15))).toBe("OK"); // 20 - 15 = 5 left
    (l.admit("a") as () => void)(); // 4 left
    expect(outcome(() => l.chargeBatch("a", 6))).toBe(
      `${status.RESOURCE_EXHAUSTED} Throttling rate limit of 10 requests per second exceeded: a batch counts one per item, and 6 do not fit now; retry later or send fewer`,
    );
    // The refused batch took nothing beyond its own token: 4 single calls still fit, the fifth does not.
    expect([1, 2, 3, 4, 5].map(() => throttled(l, "a"))).toEqual([false, false, false, false, true]);
    now += 1000; // 10 back
    (l.admit("a") as () => void)();
    expect(outcome(() => l.chargeBatch("a", 10))).toBe("OK");
    expect(throttled(l, "a")).toBe(true);
  });

  it("a single call or a one-item batch costs its own token only; more items than the burst never fit", () => {
    const l = limiter(() => 0);
    l.chargeBatch("a", 1);
    l.chargeBatch("a", 0);
    expect(outcome(() => l.chargeBatch("a", 21))).toBe(
      `${status.INVALID_ARGUMENT} InvalidParameter items: must hold at most 20 items: each counts against the rate limit, whose burst is 20; got 21`,
    );
    expect(outcome(() => l.chargeBatch("a", 20))).toBe("OK"); // 19 beyond the call's own
    expect(throttled(l, "a")).toBe(false); // the last token
    expect(throttled(l, "a")).toBe(true);
  });
});

describe("RateLimiter: calls in flight of a throttled principal", () => {
  const THROTTLING = { status: status.RESOURCE_EXHAUSTED, code: ErrorCode.Throttled };
  const flooding = (limiter: RateLimiter, principal: string) => {
    // Spend the bucket, then get throttled once: from now on the principal counts as flooding.
    const releases: (() => void)[] = [];
    for (;;) {
      try {
        releases.push(limiter.admit(principal) as () => void);
      } catch {
        return releases;
      }
    }
  };

  it("does not cap a principal that stays within its rate", () => {
    const limiter = new RateLimiter({ ratePerSecond: 10, burst: 100, rejectDelayMs: 0, throttledMaxInFlight: 2 }, () => 0);
    const turns = Array.from({ length: 50 }, () => limiter.admit("a"));
    expect(turns.every((t) => typeof t === "function")).toBe(true);
    expect(limiter.load("a")).toEqual({ inFlight: 50, waiting: 0 });
  });

  it("once throttled, admits the principal's calls only as its earlier ones finish, in order; others go at once", async () => {
    let now = 0;
    const limiter = new RateLimiter({ ratePerSecond: 10, burst: 3, rejectDelayMs: 0, throttledMaxInFlight: 2 }, () => now);
    const inFlight = flooding(limiter, "mallory");
    expect(inFlight).toHaveLength(3);
    now += 500; // five tokens back, but mallory already has 3 calls in progress (cap 2)
    const waiting = [limiter.admit("mallory"), limiter.admit("mallory")];
    expect(waiting.every((t) => t instanceof Promise)).toBe(true);
    expect(limiter.load("mallory")).toEqual({ inFlight: 3, waiting: 2 });
    expect(typeof limiter.admit("alice")).toBe("function"); // another principal is not held up

    const order: number[] = [];
    void (waiting[0] as Promise<() => void>).then(() => order.push(0));
    void (waiting[1] as Promise<() => void>).then(() => order.push(1));
    inFlight[0]!();
    inFlight[0]!(); // a second release of the same call does nothing
    await Promise.resolve();
    expect(order).toEqual([]); // 2 still in flight: at the cap
    inFlight[1]!();
    await new Promise((r) => setImmediate(r));
    expect(order).toEqual([0]);
    expect(limiter.load("mallory")).toEqual({ inFlight: 2, waiting: 1 });
    inFlight[2]!();
    await new Promise((r) => setImmediate(r));
    expect(order).toEqual([0, 1]);
  });

  it("counts as flooding for 2 s after the last throttled call, then lifts the cap", () => {
    let now = 0;
    const limiter = new RateLimiter({ ratePerSecond: 1000, burst: 2, rejectDelayMs: 0, throttledMaxInFlight: 1 }, () => now);
    const inFlight = flooding(limiter, "m");
    now += 100;
    expect(limiter.admit("m")).toBeInstanceOf(Promise);
    inFlight.forEach((release) => release());
    now += 2000;
    const turns = [limiter.admit("m"), limiter.admit("m")];
    expect(turns.every((t) => typeof t === "function")).toBe(true);
  });

  it("refuses a waiting call with Throttling before the caller's deadline passes", async () => {
    let now = 0;
    const limiter = new RateLimiter({ ratePerSecond: 10, burst: 1, rejectDelayMs: 0, throttledMaxInFlight: 1 }, () => now);
    flooding(limiter, "m");
    now += 1000;
    const turn = limiter.admit("m", new Date(Date.now() + 40));
    expect(turn).toBeInstanceOf(Promise);
    await expect(turn).rejects.toMatchObject(THROTTLING);
    expect(limiter.load("m")).toEqual({ inFlight: 1, waiting: 0 });
  });
});

describe("throttleHoldMs", () => {
  it("holds the configured delay ±50 %, but answers before the caller's deadline", () => {
    const now = 1_000_000;
    for (let i = 0; i < 100; i++) {
      const free = throttleHoldMs(1000, undefined, now);
      expect(free).toBeGreaterThanOrEqual(500);
      expect(free).toBeLessThanOrEqual(1500);
      expect(throttleHoldMs(1000, new Date(now + 300), now)).toBeLessThanOrEqual(225);
    }
    expect(throttleHoldMs(1000, new Date(now - 10), now)).toBe(0); // already past: answer at once
    expect(throttleHoldMs(0, undefined, now)).toBe(0);
  });
});

describe("limit configuration", () => {
  const base = { DATABASE_URL: "postgres://x@127.0.0.1/kms", KMS_INSECURE_DEV_MODE: "true" };
  it("has defaults and passes the size and stream caps to grpc-js", () => {
    const { limits } = loadApiConfig(base);
    expect(limits).toEqual({
      ratePerSecond: 2000,
      burst: 4000,
      rejectDelayMs: 1000,
      throttledMaxInFlight: 4,
      authFailuresPerSecond: 10,
      authFailureBurst: 100,
      refusalWindowMs: 5000,
      maxRequestBytes: 4194304,
      maxConcurrentStreams: 256,
    });
    expect(serverOptions(limits)).toEqual({ "grpc.max_receive_message_length": 4194304, "grpc.max_concurrent_streams": 256 });
  });

  it("reads the variables and names a bad one", () => {
    const env = {
      ...base,
      KMS_RATE_LIMIT_PER_SECOND: "5",
      KMS_RATE_LIMIT_BURST: "7",
      KMS_RATE_LIMIT_DELAY_MS: "0",
      KMS_RATE_LIMIT_THROTTLED_IN_FLIGHT: "9",
      KMS_AUTH_FAILURES_PER_SECOND: "2",
      KMS_AUTH_FAILURE_BURST: "3",
      KMS_AUDIT_REFUSAL_WINDOW_MS: "250",
      KMS_MAX_REQUEST_BYTES: "65536",
      KMS_MAX_CONCURRENT_STREAMS: "8",
    };
    expect(loadApiConfig(env).limits).toEqual({
      ratePerSecond: 5,
      burst: 7,
      rejectDelayMs: 0,
      throttledMaxInFlight: 9,
      authFailuresPerSecond: 2,
      authFailureBurst: 3,
      refusalWindowMs: 250,
      maxRequestBytes: 65536,
      maxConcurrentStreams: 8,
    });
    expect(() => loadApiConfig({ ...base, KMS_AUDIT_REFUSAL_WINDOW_MS: "5" })).toThrow("KMS_AUDIT_REFUSAL_WINDOW_MS: must be between 10 and 3600000, got 5");
    expect(() => loadApiConfig({ ...base, KMS_RATE_LIMIT_DELAY_MS: "-1" })).toThrow('KMS_RATE_LIMIT_DELAY_MS: must be a whole number, got "-1"');
    expect(() => loadApiConfig({ ...base, KMS_RATE_LIMIT_PER_SECOND: "0" })).toThrow("KMS_RATE_LIMIT_PER_SECOND: must be between 1 and 10000000, got 0");
  });

  it("KMS_CREATE_ROOT_KEY is off unless set to true", () => {
    const env = { KMS_PKCS11_MODULE: "/x.so", KMS_PKCS11_PIN: "1" };
    expect(loadWorkerConfig(env).pkcs11?.createRootKey).toBe(false);
    expect(loadWorkerConfig({ ...env, KMS_CREATE_ROOT_KEY: "true" }).pkcs11?.createRootKey).toBe(true);
    expect(() => loadWorkerConfig({ ...env, KMS_CREATE_ROOT_KEY: "yes" })).toThrow('KMS_CREATE_ROOT_KEY: must be true or false, got "yes"');
  });
});

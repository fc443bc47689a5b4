import { status } from "@grpc/grpc-js";
import { KmsClientError } from "./errors";
import { DEFAULT_RETRY, backoffDelay, isRetryable, withRetry } from "./retry";

const error = (code: status) => new KmsClientError(code, "x", undefined, undefined);

it("retries on UNAVAILABLE only", () => {
  expect(isRetryable(error(status.UNAVAILABLE))).toBe(true);
  for (const code of [status.INVALID_ARGUMENT, status.NOT_FOUND, status.FAILED_PRECONDITION, status.DEADLINE_EXCEEDED, status.INTERNAL, status.RESOURCE_EXHAUSTED]) {
    expect(isRetryable(error(code))).toBe(false);
  }
  expect(isRetryable(new Error("UNAVAILABLE"))).toBe(false);
});

it("doubles the cap per attempt up to maxDelayMs, with full jitter", () => {
  const options = { retries: 10, baseDelayMs: 100, maxDelayMs: 1000 };
  expect([1, 2, 3, 4, 5].map((a) => backoffDelay(a, options, () => 0.999999))).toEqual([99, 199, 399, 799, 999]);
  expect(backoffDelay(3, options, () => 0)).toBe(0);
  expect(backoffDelay(3, options, () => 0.5)).toBe(200);
});

it("gives up after `retries` further attempts and throws the last error", async () => {
  const sleeps: number[] = [];
  let calls = 0;
  const failing = withRetry(
    async () => {
      calls++;
      throw error(status.UNAVAILABLE);
    },
    { ...DEFAULT_RETRY, retries: 3 },
    async (ms) => {
      sleeps.push(ms);
    },
  );
  await expect(failing).rejects.toMatchObject({ code: status.UNAVAILABLE });
  expect(calls).toBe(4);
  expect(sleeps).toHaveLength(3);
});

it("returns as soon as an attempt succeeds, and never retries other errors", async () => {
  let calls = 0;
  const result = await withRetry(async () => (++calls < 3 ? Promise.reject(error(status.UNAVAILABLE)) : "ok"), DEFAULT_RETRY, async () => {});
  expect([result, calls]).toEqual(["ok", 3]);
  calls = 0;
  await expect(withRetry(async () => { calls++; throw error(status.INVALID_ARGUMENT); }, DEFAULT_RETRY, async () => {})).rejects.toMatchObject({ code: status.INVALID_ARGUMENT });
  expect(calls).toBe(1);
});

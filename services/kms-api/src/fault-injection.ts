// TEST-ONLY fault injection, off by default. KMS_FAULT_INJECT names one fault:
//   crash-after-generate  kms-api kills itself (SIGKILL: no cleanup, no flush, as a power cut) right after
//                         the worker returned new key material and before the database insert, so tests
//                         can check that such a crash leaves no row pointing at missing material and
//                         nothing usable behind (test/integration/crash-consistency.test.ts).
//   crash-after-rewrap    kms-api kills itself right after the worker re-wrapped a batch of a root rotation
//                         and before its compare-and-set commits (test/integration/root-rotation.test.ts).
//   audit-write-fail      every audit write fails as a database error would, so tests can check that
//                         nothing is answered and nothing changes without its row (audit-atomic.test.ts).
// Nothing else reads the variable; production never sets it.
const FAULT = process.env.KMS_FAULT_INJECT ?? "";

export type FaultPoint = "crash-after-generate" | "crash-after-rewrap";
export type FailurePoint = "audit-write-fail";

export function faultPoint(point: FaultPoint): void {
  if (FAULT === point) process.kill(process.pid, "SIGKILL");
}

/** Throws where `point` is the injected fault. */
export function failurePoint(point: FailurePoint): void {
  if (FAULT === point) throw new Error(`injected fault ${point}`);
}

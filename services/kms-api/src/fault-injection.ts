// TEST-ONLY fault injection, off by default: with KMS_FAULT_INJECT=crash-after-generate, kms-api kills
// itself (SIGKILL: no cleanup, no flush, as a power cut) right after the worker returned new key
// material and before the database insert, so tests can check that such a crash leaves no row
// pointing at missing material and nothing usable behind (test/integration/crash-consistency.test.ts).
// Nothing else reads the variable; production never sets it.
const FAULT = process.env.KMS_FAULT_INJECT ?? "";

export type FaultPoint = "crash-after-generate";

export function faultPoint(point: FaultPoint): void {
  if (FAULT === point) process.kill(process.pid, "SIGKILL");
}

// How a call's failure is named, once, for the pipeline and for each item of a batch.
import { status } from "@grpc/grpc-js";
import { ErrorCode, KmsError, deadlineExceeded, outcomeOf, statusName, unavailable } from "@kms/errors";
import type { Outcome } from "@kms/errors";
import { isDatabaseUnavailable, isQueryCancelled } from "@kms/db";
import type { AuditEvent } from "@kms/db";
import type { CallContext } from "../context";
import type { Logger } from "@kms/telemetry";
import { describeError } from "@kms/telemetry";

/** Anything thrown, as the KmsError the caller sees; what is not one is logged and answered INTERNAL. */
export function asKmsError(err: unknown, log: Logger, where: { requestId: string; operation: string }): KmsError {
  if (err instanceof KmsError) return err;
  // A statement Postgres stopped at the deadline or the statement ceiling: nothing took effect, and
  // the same call would time out again (not UNAVAILABLE, which invites an immediate retry).
  if (isQueryCancelled(err)) return deadlineExceeded("database");
  // A database that cannot be reached is the caller's UNAVAILABLE (retry is safe), not a bug.
  if (isDatabaseUnavailable(err)) return unavailable("database");
  log.error("request failed", { requestId: where.requestId, operation: where.operation, ...describeError(err) });
  return new KmsError(ErrorCode.Internal, "internal error");
}

/** The result and error code an audit row records ("OK" and "" for success), beside the item outcome. */
export function statusOf(failure: KmsError | undefined): Outcome & { resultCode: string } {
  if (failure === undefined) return { code: status.OK, resultCode: "OK", errorCode: "", message: "" };
  const outcome = outcomeOf(failure);
  return { ...outcome, resultCode: statusName(outcome.code) };
}

/** The audit row of one call, as its context names it (`failure` undefined: OK). */
export function auditEventOf(ctx: CallContext, time: Date, failure?: KmsError): AuditEvent {
  const { resultCode, errorCode } = statusOf(failure);
  return {
    time,
    requestId: ctx.requestId,
    principal: ctx.principal,
    operation: ctx.audit.operation,
    keyId: ctx.audit.keyId,
    keyVersionId: ctx.audit.keyVersionId,
    encryptionContext: ctx.encryptionContext,
    resultCode,
    errorCode,
    ...(ctx.audit.grantId ? { grantId: ctx.audit.grantId } : {}),
    ...(ctx.dryRun ? { dryRun: true } : {}),
  };
}

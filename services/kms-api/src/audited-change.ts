// A change and its audit row commit together or not at all: the change's transaction ends by writing
// the call's OK row into the chain (UnitOfWork.appendAudit, packages/db). If that row cannot be written the
// change rolls back and the caller gets UNAVAILABLE, so nothing changes without a row saying who did it.
// The pipeline (pipeline/pipeline.ts) then writes no second row for a call whose row is already in (ctx.audit.written).
import { unavailable } from "@kms/errors";
import type { UnitOfWork } from "@kms/db";
import type { CallContext, Services } from "./context";
import { describeError } from "@kms/telemetry";
import { auditEventOf } from "./pipeline/outcome";

/**
 * Runs `change` as one unit of work (packages/db) that also holds its audit row; `change` does database
 * work only (the worker is asked before, never while rows are locked). A result of undefined or false means
 * nothing changed (e.g. the key or alias is gone): then no row is written here and the caller's error
 * gets its row from the pipeline as usual.
 */
export async function auditedTransaction<T>(s: Services, ctx: CallContext, change: (work: UnitOfWork) => Promise<T>): Promise<T> {
  let written = false;
  const result = await s.transactions.run(async (work) => {
    const r = await change(work);
    if (r === undefined || r === false) return r;
    try {
      await work.appendAudit(auditEventOf(ctx, s.clock()));
    } catch (err) {
      s.log.error("audit write failed; change rolled back", { requestId: ctx.requestId, ...describeError(err) });
      throw unavailable("audit log");
    }
    written = true;
    return r;
  });
  if (written) ctx.audit.written = true;
  return result;
}

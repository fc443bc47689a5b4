// Dry runs (docs/grants.md#dry-runs): a request with dry_run = true goes through authorization, key state
// and input checks like the real call, and its handler stops at dryRunStop() just before the operation
// (worker call, usage count, database write). A dry run that would succeed answers as AWS does, with an
// error no client can take for a result: FAILED_PRECONDITION, kms-error-code DryRunOperation.
import { ErrorCode, KmsError } from "@kms/errors";
import type { CallContext } from "../call-context";

export const DRY_RUN_MESSAGE = "dry run: the request would have succeeded (nothing was done)";

/** Where a handler's checks end and its work begins: a dry run stops here. */
export function dryRunStop(ctx: CallContext): void {
  if (ctx.dryRun) throw new KmsError(ErrorCode.DryRunOperation, DRY_RUN_MESSAGE);
}

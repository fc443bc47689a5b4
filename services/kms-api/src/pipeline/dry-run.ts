// Dry runs (docs/grants.md#dry-runs): a request with dry_run = true goes through authorization, key state
// and input checks like the real call, and its handler stops at dryRunStop() just before the operation
// (worker call, usage count, database write). A dry run that would succeed answers as AWS does, with an
// error no client can take for a result: FAILED_PRECONDITION, kms-error-code DryRunOperation.
import { ErrorCode, KmsError, invalidArgument } from "@kms/errors";
import type { CallContext } from "../call-context";

export const DRY_RUN_MESSAGE = "dry run: the request would have succeeded (nothing was done)";

/** Where a handler's checks end and its work begins: a dry run stops here. */
export function dryRunStop(ctx: CallContext): void {
  if (ctx.dryRun) throw new KmsError(ErrorCode.DryRunOperation, DRY_RUN_MESSAGE);
}

export const MAX_GRANT_TOKENS = 10;
const MAX_GRANT_TOKEN_CHARS = 256;

/** grant_tokens within bounds (INVALID_ARGUMENT); whether each is genuine is the lookup's business. */
export function checkGrantTokens(tokens: readonly string[], field = "grant_tokens"): readonly string[] {
  if (tokens.length > MAX_GRANT_TOKENS) throw invalidArgument(field, `at most ${MAX_GRANT_TOKENS}, got ${tokens.length}`);
  tokens.forEach((t, i) => {
    if (t.length === 0 || t.length > MAX_GRANT_TOKEN_CHARS) throw invalidArgument(`${field}[${i}]`, `must be 1 to ${MAX_GRANT_TOKEN_CHARS} characters`);
  });
  return tokens;
}

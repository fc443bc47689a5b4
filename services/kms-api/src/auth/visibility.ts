// What a caller may see and name beyond one key's own RPCs: which keys the lists show it (those whose
// policy lets it DescribeKey; KMS_ADMINS see all), and which alias names it may create, move and delete
// (KMS_ALIAS_PREFIXES; KMS_ADMINS any). The per-key decisions themselves are authorize.ts's.
import { status } from "@grpc/grpc-js";
import { ErrorCode, KmsError } from "@kms/errors";
import type { KeyRecord } from "@kms/db";
import type { AccessConfig } from "@kms/config";
import type { CallContext } from "../call-context";
import type { Authorizer } from "./authorize";

/** What these decisions read: the access lists, and the Authorizer for a key's policy. */
export interface Deciders {
  access: AccessConfig;
  authorizer: Authorizer;
}

export function isAdmin(s: Deciders, ctx: CallContext): boolean {
  return s.access.admins.includes(ctx.principal);
}

/** The key may be listed to this caller: its policy allows kms:DescribeKey (no encryption context). */
export function mayDescribe(s: Deciders, ctx: CallContext, key: KeyRecord): boolean {
  if (isAdmin(s, ctx)) return true;
  try {
    s.authorizer.key(ctx, key, "kms:DescribeKey", {});
    return true;
  } catch (err) {
    if (err instanceof KmsError && err.status === status.PERMISSION_DENIED) return false;
    throw err;
  }
}

/** The alias name prefixes this caller may manage: its own entry and the "*" entry. */
function prefixesOf(s: Deciders, ctx: CallContext): string[] {
  const table = s.access.aliasPrefixes;
  return [...(table[ctx.principal] ?? []), ...(table["*"] ?? [])];
}

/** The caller may create, move and delete this alias name (and so may know whether it exists). */
export function mayManageAlias(s: Deciders, ctx: CallContext, aliasName: string): boolean {
  return isAdmin(s, ctx) || prefixesOf(s, ctx).some((p) => aliasName.startsWith(p));
}

/**
 * PERMISSION_DENIED unless the name is in the caller's namespace. Checked before the alias or any key is
 * looked up, so a refused caller learns nothing about either.
 */
export function authorizeAliasName(s: Deciders, ctx: CallContext, aliasName: string): void {
  if (mayManageAlias(s, ctx, aliasName)) return;
  throw new KmsError(
    ErrorCode.PermissionDenied,
    `kms:${ctx.operation} on ${aliasName} is not allowed for ${ctx.principal} (KMS_ALIAS_PREFIXES)`,
  );
}

/** The one answer for an alias the caller may not use, whether or not it exists. */
export function aliasDenied(ctx: CallContext, aliasName: string, action = `kms:${ctx.operation}`): KmsError {
  return new KmsError(ErrorCode.PermissionDenied, `${action} on ${aliasName} is not allowed for ${ctx.principal}`);
}

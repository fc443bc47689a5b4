// Who may do what. Key operations are decided by the key's policy (packages/key-policy); operations on
// no key (CreateKey, ListKeys, ListAliases, the audit RPCs) by the configured access lists.
import { ErrorCode, KmsError } from "@kms/errors";
import type { KeyRecord } from "@kms/db";
import { conditionValues, defaultPolicy } from "@kms/key-policy";
import { keySpecName, keyUsageName, enumName } from "@kms/key-rules";
import { kmsResources } from "@kms/proto";
import type { CallContext, Services } from "../context";

const denied = (why: string) => new KmsError(ErrorCode.PermissionDenied, why);

/** Default policy texts by creator: KMS_ADMINS is fixed for the process, so each is built once, not per call. */
const defaultPolicies = new Map<string, string>();
const MAX_DEFAULT_POLICIES = 10_000;

/** The policy in force for a key: its own, or the default one (creator and admins) if it has none. */
export function policyOf(s: Services, key: KeyRecord): string {
  if (key.policy !== null) return key.policy;
  const cacheKey = `${key.creator}\0${s.access.admins.join("\0")}`;
  let text = defaultPolicies.get(cacheKey);
  if (text === undefined) {
    if (defaultPolicies.size >= MAX_DEFAULT_POLICIES) defaultPolicies.clear();
    text = defaultPolicy(key.creator, s.access.admins);
    defaultPolicies.set(cacheKey, text);
  }
  return text;
}

/** PERMISSION_DENIED unless the key's policy allows `action` for this caller and context. */
export function authorizeKey(
  s: Services,
  ctx: CallContext,
  key: KeyRecord,
  action = `kms:${ctx.operation}`,
  encryptionContext: Readonly<Record<string, string>> = ctx.encryptionContext,
): void {
  const decision = s.policies.decide(policyOf(s, key), {
    principal: ctx.principal,
    action,
    values: conditionValues({
      principal: ctx.principal,
      keyOrigin: enumName(kmsResources.OriginSchema, key.origin),
      keySpec: keySpecName(key.keySpec),
      keyUsage: keyUsageName(key.keyUsage),
      protectionLevel: enumName(kmsResources.ProtectionLevelSchema, key.protectionLevel),
      mutualTls: ctx.mutualTls,
      encryptionContext,
    }),
  });
  if (decision === "Deny") throw denied(`${action} on key ${key.keyId} is denied by its key policy`);
  if (decision !== "Allow") throw denied(`${action} on key ${key.keyId} is not allowed for ${ctx.principal}`);
}

function listed(list: readonly string[], principal: string): boolean {
  return list.includes("*") || list.includes(principal);
}

/** CreateKey, ListKeys, ListAliases: KMS_CREATORS and KMS_ADMINS. */
export function authorizeCreator(s: Services, ctx: CallContext): void {
  if (!listed(s.access.creators, ctx.principal) && !listed(s.access.admins, ctx.principal)) {
    throw denied(`${ctx.operation} is not allowed for ${ctx.principal} (KMS_CREATORS)`);
  }
}

/** The audit RPCs: KMS_AUDITORS and KMS_ADMINS. */
export function authorizeAuditor(s: Services, ctx: CallContext): void {
  if (!listed(s.access.auditors, ctx.principal) && !listed(s.access.admins, ctx.principal)) {
    throw denied(`${ctx.operation} is not allowed for ${ctx.principal} (KMS_AUDITORS)`);
  }
}

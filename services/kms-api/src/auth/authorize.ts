// Who may do what. Key operations are decided by the key's policy (packages/key-policy); operations on
// no key (CreateKey, ListKeys, ListAliases, the audit RPCs) by the configured access lists.
import { ErrorCode, KmsError } from "@kms/errors";
import type { KeyRecord } from "@kms/db";
import { conditionValues, defaultPolicy } from "@kms/key-policy";
import { keySpecName, keyUsageName, enumName } from "@kms/key-rules";
import { kmsResources } from "@kms/proto";
import type { AccessConfig } from "@kms/config";
import type { Decision, PolicyEngine } from "@kms/key-policy";
import type { CallContext } from "../call-context";

const denied = (why: string) => new KmsError(ErrorCode.PermissionDenied, why);

/** Default policy texts by creator: KMS_ADMINS is fixed for the process, so each is built once, not per call. */
const MAX_DEFAULT_POLICIES = 10_000;

function listed(list: readonly string[], principal: string): boolean {
  return list.includes("*") || list.includes(principal);
}

/** Decides every call: a key's policy for key operations, the access lists for the rest. */
export class Authorizer {
  private readonly defaultPolicies = new Map<string, string>();

  constructor(
    private readonly policies: PolicyEngine,
    readonly access: AccessConfig,
  ) {}

  /** The policy in force for a key: its own, or the default one (creator and admins) if it has none. */
  policyOf(key: KeyRecord): string {
    if (key.policy !== null) return key.policy;
    let text = this.defaultPolicies.get(key.creator);
    if (text === undefined) {
      if (this.defaultPolicies.size >= MAX_DEFAULT_POLICIES) this.defaultPolicies.clear();
      text = defaultPolicy(key.creator, this.access.admins);
      this.defaultPolicies.set(key.creator, text);
    }
    return text;
  }

  /** PERMISSION_DENIED unless the key's policy allows `action` for this caller and context. */
  key(ctx: CallContext, key: KeyRecord, action = `kms:${ctx.operation}`, encryptionContext: Readonly<Record<string, string>> = ctx.encryptionContext): void {
    const decision = this.decide(ctx, key, action, encryptionContext);
    if (decision !== "Allow") throw this.refusal(decision, ctx, key, action);
  }

  /** The key policy's decision alone; a NoAllow may still be allowed by a grant (keys.ts). */
  decide(ctx: CallContext, key: KeyRecord, action: string, encryptionContext: Readonly<Record<string, string>>): Decision {
    return this.policies.decide(this.policyOf(key), {
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
  }

  /** The refusal of a decision other than Allow. */
  refusal(decision: Decision, ctx: CallContext, key: KeyRecord, action: string): KmsError {
    if (decision === "Deny") return denied(`${action} on key ${key.keyId} is denied by its key policy`);
    return denied(`${action} on key ${key.keyId} is not allowed for ${ctx.principal}`);
  }

  /** CreateKey, ListKeys, ListAliases: KMS_CREATORS and KMS_ADMINS. */
  creator(ctx: CallContext): void {
    if (!listed(this.access.creators, ctx.principal) && !listed(this.access.admins, ctx.principal)) {
      throw denied(`${ctx.operation} is not allowed for ${ctx.principal} (KMS_CREATORS)`);
    }
  }

  /** RotateRootKey: KMS_ADMINS only. */
  admin(ctx: CallContext): void {
    if (!listed(this.access.admins, ctx.principal)) throw denied(`${ctx.operation} is not allowed for ${ctx.principal} (KMS_ADMINS)`);
  }

  /** The audit RPCs: KMS_AUDITORS and KMS_ADMINS. */
  auditor(ctx: CallContext): void {
    if (!listed(this.access.auditors, ctx.principal) && !listed(this.access.admins, ctx.principal)) {
      throw denied(`${ctx.operation} is not allowed for ${ctx.principal} (KMS_AUDITORS)`);
    }
  }
}

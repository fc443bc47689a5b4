import { randomUUID } from "node:crypto";
import { hsmCannotHold, noHsmModule, resolveKeyChoice, rotationPolicy, validateDescription, validateTags } from "@kms/key-rules";
import type { KeyChoice, RotationPolicy } from "@kms/key-rules";
import type { KeyRecord } from "@kms/db";
import { kms, kmsResources } from "@kms/proto";
import { auditedTransaction } from "../audited-change";
import { generateVersion } from "../key-changes";
import { toKeyMetadata } from "../keys";
import { checkedPolicy } from "./key-policy";
import type { CallContext, Services } from "../context";
import type { Handler } from "../pipeline/operation";

export const createKey: Handler<typeof kms.CreateKeyRequestSchema, typeof kms.CreateKeyResponseSchema> = async (
  req,
  ctx,
  s,
) => {
  s.authorizer.creator(ctx); // first: a caller who may not create keys learns nothing about their request
  validateDescription(req.description);
  validateTags(req.tags);
  const policy = req.policy === "" ? null : checkedPolicy(s, ctx, req.policy);
  // Asking the worker only when the caller left the protection level to us: HSM where the worker can
  // keep this spec in its HSM (not Ed25519 on SoftHSM 2.6, which cannot wrap EdDSA keys), else SOFTWARE.
  const hsmAvailable =
    req.protectionLevel === kmsResources.ProtectionLevel.UNSPECIFIED ? hsmCanHold(await s.worker.getStatus(ctx.deadline), req.keySpec) : true;
  const choice = resolveKeyChoice(req, hsmAvailable);
  const now = s.clock();
  const rotation = rotationPolicy(choice, req.enableAutomaticRotation, req.rotationInterval, now);

  const keyId = randomUUID();
  ctx.audit.keyId = keyId;
  if (choice.origin === kmsResources.Origin.EXTERNAL) {
    return createExternalKey(s, ctx, keyId, { ...choice, description: req.description, tags: req.tags, policy, rotation, now });
  }
  const keyVersionId = randomUUID();
  ctx.audit.keyVersionId = keyVersionId;
  // Made before the transaction: no row is locked while the worker works.
  const version = await generateVersion(s, { keyId, ...choice }, ctx.deadline, keyVersionId);
  const key: KeyRecord = {
    keyId,
    description: req.description,
    ...choice,
    keyState: kmsResources.KeyState.ENABLED,
    creationTime: now,
    creator: ctx.principal,
    primaryKeyVersionId: keyVersionId,
    ...rotation,
    lastRotationTime: null,
    deleteTime: null,
    deletionProtection: false,
    deletionProtectionDescription: "",
    materialExpireTime: null,
    tags: { ...req.tags },
    policy,
  };
  await auditedTransaction(s, ctx, async (work) => {
    await work.insertKey(key, { ...version, creationTime: now });
    return true;
  });
  return { keyMetadata: toKeyMetadata(key) };
};

/** Whether the worker can keep keys of `keySpec` at PROTECTION_LEVEL_HSM. */
function hsmCanHold(worker: { hsmKeysSupported: boolean; hsmUnsupportedKeySpecs: kmsResources.KeySpec[] }, keySpec: kmsResources.KeySpec): boolean {
  return worker.hsmKeysSupported && !worker.hsmUnsupportedKeySpecs.includes(keySpec);
}

/**
 * ORIGIN_EXTERNAL: no material and no version until ImportKeyMaterial; the key waits in PENDING_IMPORT.
 * The worker must still be able to hold the key's protection level.
 */
async function createExternalKey(
  s: Services,
  ctx: CallContext,
  keyId: string,
  c: KeyChoice & { description: string; tags: Record<string, string>; policy: string | null; rotation: RotationPolicy; now: Date },
) {
  if (c.protectionLevel === kmsResources.ProtectionLevel.HSM) {
    const worker = await s.worker.getStatus(ctx.deadline);
    if (!worker.hsmKeysSupported) throw noHsmModule("the HSM worker");
    if (!hsmCanHold(worker, c.keySpec)) throw hsmCannotHold(c.keySpec);
  }
  const key: KeyRecord = {
    keyId,
    description: c.description,
    keySpec: c.keySpec,
    keyUsage: c.keyUsage,
    protectionLevel: c.protectionLevel,
    origin: c.origin,
    keyState: kmsResources.KeyState.PENDING_IMPORT,
    creationTime: c.now,
    creator: ctx.principal,
    primaryKeyVersionId: null,
    ...c.rotation,
    lastRotationTime: null,
    deleteTime: null,
    deletionProtection: false,
    deletionProtectionDescription: "",
    materialExpireTime: null,
    tags: { ...c.tags },
    policy: c.policy,
  };
  await auditedTransaction(s, ctx, async (work) => {
    await work.insertKey(key, undefined);
    return true;
  });
  return { keyMetadata: toKeyMetadata(key) };
}

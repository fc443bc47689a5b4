import { randomUUID } from "node:crypto";
import { resolveKeyChoice, rotationPolicy, validateDescription, validateTags } from "@kms/key-rules";
import type { KeyRecord } from "@kms/db";
import { kms, kmsResources } from "@kms/proto";
import { authorizeCreator } from "../auth/authorize";
import { toKeyMetadata } from "../keys";
import { checkedPolicy } from "./key-policy";
import type { Handler } from "../rpc";


export const createKey: Handler<typeof kms.CreateKeyRequestSchema, typeof kms.CreateKeyResponseSchema> = async (
  req,
  ctx,
  s,
) => {
  validateDescription(req.description);
  validateTags(req.tags);
  authorizeCreator(s, ctx);
  const policy = req.policy === "" ? null : checkedPolicy(s, ctx, req.policy);
  // Asking the worker only when the caller left the protection level to us.
  const hsmAvailable =
    req.protectionLevel === kmsResources.ProtectionLevel.UNSPECIFIED
      ? (await s.worker.getStatus(ctx.deadline)).hsmKeysSupported
      : true;
  const choice = resolveKeyChoice(req, hsmAvailable);
  const now = s.clock();
  const rotation = rotationPolicy(choice, req.enableAutomaticRotation, req.rotationInterval, now);

  const keyId = randomUUID();
  const keyVersionId = randomUUID();
  ctx.audit.keyId = keyId;
  ctx.audit.keyVersionId = keyVersionId;
  const material = await s.worker.generateKeyMaterial(
    { keySpec: choice.keySpec, protectionLevel: choice.protectionLevel, label: keyVersionId },
    ctx.deadline,
  );
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
  await s.store.createKey(key, {
    keyVersionId,
    keyId,
    creationTime: now,
    wrappedMaterial: Buffer.from(material.wrappedMaterial),
    rootKeyId: material.rootKeyId,
    publicKey: material.publicKey.length > 0 ? Buffer.from(material.publicKey) : null,
  });
  return { keyMetadata: toKeyMetadata(key) };
};

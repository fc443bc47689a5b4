import { randomUUID } from "node:crypto";
import { status } from "@grpc/grpc-js";
import { ErrorCode, KmsError } from "@kms/errors";
import { resolveKeyChoice, rotationPolicy, validateDescription, validateTags } from "@kms/key-rules";
import type { KeyRecord } from "@kms/db";
import { kms, kmsResources } from "@kms/proto";
import { toKeyMetadata } from "../keys";
import type { Handler } from "../rpc";

const notYet = (field: string, what: string) =>
  new KmsError(status.UNIMPLEMENTED, ErrorCode.Unimplemented, `${field}: ${what} is not implemented yet`);

export const createKey: Handler<typeof kms.CreateKeyRequestSchema, typeof kms.CreateKeyResponseSchema> = async (
  req,
  ctx,
  s,
) => {
  validateDescription(req.description);
  validateTags(req.tags);
  if (req.policy !== "") throw notYet("policy", "key policies");
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
  };
  await s.store.createKey(key, {
    keyVersionId,
    keyId,
    creationTime: now,
    wrappedMaterial: Buffer.from(material.wrappedMaterial),
    rootKeyId: material.rootKeyId,
  });
  return { keyMetadata: toKeyMetadata(key) };
};

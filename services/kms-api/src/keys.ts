// Finding keys for a request and showing them to the caller.
import { timestampFromDate, durationFromMs } from "@bufbuild/protobuf/wkt";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { status } from "@grpc/grpc-js";
import { ErrorCode, InternalError, KmsError, invalidCiphertext, keyNotFound } from "@kms/errors";
import type { KeyRecord, KeyVersionRecord } from "@kms/db";
import { checkEnabled, parseKeyReference } from "@kms/key-rules";
import type { kmsResources } from "@kms/proto";
import type { hsm } from "@kms/proto/internal";

import { aliasDenied, isAdmin, mayManageAlias } from "./auth/visibility";
import type { CallContext, Services } from "./context";

/**
 * NOT_FOUND for a key that does not exist; a destroyed key says so (its tombstone stays). With the
 * call's context, a caller who could not have used the key gets the answer authorizeKey() gives for a
 * key it may not use instead: whether an id exists, or when a key was destroyed, is not its business.
 * Admins, the key's creator and whoever scheduled its deletion are told.
 */
export async function keyGone(services: Services, keyId: string, ctx?: CallContext, action?: string): Promise<KmsError> {
  const tombstone = await services.store.getTombstone(keyId);
  if (ctx && !isAdmin(services, ctx) && !(tombstone && [tombstone.creator, tombstone.deletionRequestedBy].includes(ctx.principal))) {
    return keyDenied(ctx, keyId, action);
  }
  return tombstone
    ? new KmsError(ErrorCode.KeyNotFound, `key ${keyId} was deleted on ${tombstone.destroyTime.toISOString()}`)
    : keyNotFound(keyId);
}

/** The same words as authorizeKey()'s refusal of a key whose policy has no Allow for the caller. */
function keyDenied(ctx: CallContext, keyId: string, action = `kms:${ctx.operation}`): KmsError {
  return new KmsError(ErrorCode.PermissionDenied, `${action} on key ${keyId} is not allowed for ${ctx.principal}`);
}

/** Which permission a lookup checks: by default the call's own action and encryption context. */
export interface Access {
  action?: string;
  encryptionContext?: Readonly<Record<string, string>>;
}

/**
 * Resolves a key_id field (UUID or alias) to its key, records the key id for the audit row, and
 * checks the key policy (PERMISSION_DENIED) before the caller learns anything about the key's state.
 * Through an alias, a caller who may not use the key (or who asks for an alias that does not exist and
 * is outside the names it manages) gets one PERMISSION_DENIED naming the alias only: neither the target
 * nor the alias's existence leaks.
 */
export async function findKey(services: Services, ctx: CallContext, value: string, field = "key_id", access: Access = {}): Promise<KeyRecord> {
  const ref = parseKeyReference(value, field);
  if (ref.kind === "id") {
    ctx.audit.keyId ||= ref.keyId;
    const key = await services.keys.getKey(ref.keyId);
    if (!key) throw await keyGone(services, ref.keyId, ctx, access.action);
    services.authorizer.key(ctx, key, access.action, access.encryptionContext);
    return key;
  }
  const hidden = () => aliasDenied(ctx, ref.aliasName, access.action);
  const keyId = await services.keys.aliasTarget(ref.aliasName);
  if (!keyId) {
    if (!mayManageAlias(services, ctx, ref.aliasName)) throw hidden();
    throw new KmsError(ErrorCode.AliasNotFound, `alias ${JSON.stringify(ref.aliasName)} not found`);
  }
  ctx.audit.keyId ||= keyId;
  const key = await services.keys.getKey(keyId);
  if (!key) throw mayManageAlias(services, ctx, ref.aliasName) ? await keyGone(services, keyId) : hidden();
  try {
    services.authorizer.key(ctx, key, access.action, access.encryptionContext);
  } catch (err) {
    if (err instanceof KmsError && err.status === status.PERMISSION_DENIED) throw hidden();
    throw err;
  }
  return key;
}

/**
 * The version a ciphertext blob names, and its key. An unknown version is just another invalid
 * ciphertext (same error); a version of a destroyed key is NOT_FOUND naming the key.
 */
export async function versionOfBlob(
  services: Services,
  ctx: CallContext,
  keyVersionId: string,
  access: Access = {},
): Promise<{ key: KeyRecord; version: KeyVersionRecord }> {
  const version = await services.keys.getVersion(keyVersionId);
  const key = version ? await services.keys.getKey(version.keyId) : undefined;
  if (version && key) {
    ctx.audit.keyId ||= key.keyId;
    services.authorizer.key(ctx, key, access.action, access.encryptionContext);
    return { key, version };
  }
  const tombstone = await services.store.tombstoneOfVersion(keyVersionId);
  if (tombstone) throw await keyGone(services, tombstone.keyId, ctx, access.action);
  // Imported material that was deleted (or expired): the key waits in PENDING_IMPORT; say so.
  const importedBy = await services.store.keyOfImportedVersion(keyVersionId);
  const owner = importedBy ? await services.keys.getKey(importedBy) : undefined;
  if (owner) {
    ctx.audit.keyId ||= owner.keyId;
    services.authorizer.key(ctx, owner, access.action, access.encryptionContext);
    checkEnabled(owner);
  }
  throw invalidCiphertext();
}

/** The key's primary version, recorded for the audit row. */
export async function primaryVersion(services: Services, ctx: CallContext, key: KeyRecord): Promise<KeyVersionRecord> {
  const versionId = key.primaryKeyVersionId;
  const version = versionId ? await services.keys.getVersion(versionId) : undefined;
  if (!version) throw new InternalError(`key ${key.keyId} has no primary version`);
  ctx.audit.keyVersionId = version.keyVersionId;
  return version;
}

/** What the worker needs to use a version: its wrapped material and how it is protected. */
export function wrappedKey(key: KeyRecord, version: KeyVersionRecord): MessageInitShape<typeof hsm.WrappedKeySchema> {
  return {
    keyVersionId: version.keyVersionId,
    keySpec: key.keySpec,
    protectionLevel: key.protectionLevel,
    wrappedMaterial: version.wrappedMaterial,
    rootKeyId: version.rootKeyId,
  };
}

const ts = (d: Date | null) => (d ? timestampFromDate(d) : undefined);

export function toKeyMetadata(key: KeyRecord): MessageInitShape<typeof kmsResources.KeyMetadataSchema> {
  return {
    keyId: key.keyId,
    description: key.description,
    keySpec: key.keySpec,
    keyUsage: key.keyUsage,
    protectionLevel: key.protectionLevel,
    origin: key.origin,
    keyState: key.keyState,
    creationTime: timestampFromDate(key.creationTime),
    creator: key.creator,
    primaryKeyVersionId: key.primaryKeyVersionId ?? "",
    automaticRotation: key.automaticRotation,
    rotationInterval: key.rotationIntervalSeconds === null ? undefined : durationFromMs(key.rotationIntervalSeconds * 1000),
    nextRotationTime: ts(key.nextRotationTime),
    lastRotationTime: ts(key.lastRotationTime),
    deleteTime: ts(key.deleteTime),
    deletionProtection: key.deletionProtection,
    deletionProtectionDescription: key.deletionProtectionDescription,
    materialExpireTime: ts(key.materialExpireTime),
    tags: key.tags,
  };
}

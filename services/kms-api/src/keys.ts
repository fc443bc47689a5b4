// Finding keys for a request and showing them to the caller.
import { timestampFromDate, durationFromMs } from "@bufbuild/protobuf/wkt";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { status } from "@grpc/grpc-js";
import { ErrorCode, InternalError, KmsError, invalidCiphertext, keyNotFound } from "@kms/errors";
import type { KeyRecord, KeyVersionRecord } from "@kms/db";
import { checkEnabled, parseKeyReference } from "@kms/key-rules";
import type { hsm, kmsResources } from "@kms/proto";
import { authorizeKey } from "./auth/authorize";
import type { CallContext, Services } from "./context";

/** A key_id field (UUID or alias) → the key's UUID; NOT_FOUND for an unknown alias. */
export async function resolveKeyId(services: Services, value: string, field = "key_id"): Promise<string> {
  const ref = parseKeyReference(value, field);
  if (ref.kind === "id") return ref.keyId;
  const keyId = await services.keys.aliasTarget(ref.aliasName);
  if (!keyId) throw new KmsError(status.NOT_FOUND, ErrorCode.AliasNotFound, `alias ${JSON.stringify(ref.aliasName)} not found`);
  return keyId;
}

/** NOT_FOUND for a key that does not exist; a destroyed key says so (its tombstone stays). */
export async function keyGone(services: Services, keyId: string): Promise<KmsError> {
  const tombstone = await services.store.getTombstone(keyId);
  return tombstone
    ? new KmsError(status.NOT_FOUND, ErrorCode.KeyNotFound, `key ${keyId} was deleted on ${tombstone.destroyTime.toISOString()}`)
    : keyNotFound(keyId);
}

/** Which permission a lookup checks: by default the call's own action and encryption context. */
export interface Access {
  action?: string;
  encryptionContext?: Readonly<Record<string, string>>;
}

/**
 * Resolves a key_id field (UUID or alias) to its key, records the key id for the audit row, and
 * checks the key policy (PERMISSION_DENIED) before the caller learns anything about the key's state.
 */
export async function findKey(services: Services, ctx: CallContext, value: string, field = "key_id", access: Access = {}): Promise<KeyRecord> {
  const keyId = await resolveKeyId(services, value, field);
  ctx.audit.keyId ||= keyId;
  const key = await services.keys.getKey(keyId);
  if (!key) throw await keyGone(services, keyId);
  authorizeKey(services, ctx, key, access.action, access.encryptionContext);
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
    authorizeKey(services, ctx, key, access.action, access.encryptionContext);
    return { key, version };
  }
  const tombstone = await services.store.tombstoneOfVersion(keyVersionId);
  if (tombstone) throw await keyGone(services, tombstone.keyId);
  // Imported material that was deleted (or expired): the key waits in PENDING_IMPORT; say so.
  const importedBy = await services.store.keyOfImportedVersion(keyVersionId);
  const owner = importedBy ? await services.keys.getKey(importedBy) : undefined;
  if (owner) {
    ctx.audit.keyId ||= owner.keyId;
    authorizeKey(services, ctx, owner, access.action, access.encryptionContext);
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

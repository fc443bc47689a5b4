// Finding keys for a request and showing them to the caller.
import { timestampFromDate, durationFromMs } from "@bufbuild/protobuf/wkt";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { status } from "@grpc/grpc-js";
import { ErrorCode, InternalError, KmsError, keyNotFound } from "@kms/errors";
import type { KeyRecord, KeyVersionRecord } from "@kms/db";
import { parseKeyReference } from "@kms/key-rules";
import type { hsm, kmsResources } from "@kms/proto";
import type { CallContext, Services } from "./context";

/** Resolves a key_id field (UUID or alias) to its key, recording the key id for the audit row. */
export async function findKey(services: Services, ctx: CallContext, value: string, field = "key_id"): Promise<KeyRecord> {
  const ref = parseKeyReference(value, field);
  if (ref.kind === "alias") {
    // Aliases arrive with the lifecycle issue; until then no alias exists.
    throw new KmsError(status.NOT_FOUND, ErrorCode.AliasNotFound, `alias ${JSON.stringify(ref.aliasName)} not found`);
  }
  const key = await services.store.getKey(ref.keyId);
  if (!key) throw keyNotFound(ref.keyId);
  ctx.audit.keyId = key.keyId;
  return key;
}

/** The key's primary version, recorded for the audit row. */
export async function primaryVersion(services: Services, ctx: CallContext, key: KeyRecord): Promise<KeyVersionRecord> {
  const versionId = key.primaryKeyVersionId;
  const version = versionId ? await services.store.getVersion(versionId) : undefined;
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

// Choosing the key version a request names (key_version_id; empty means the primary) and reading what a
// version stores besides its wrapped material.
import { ErrorCode, InternalError, KmsError, invalidArgument } from "@kms/errors";
import type { KeyRecord, KeyVersionRecord } from "@kms/db";
import { isUuid } from "@kms/key-rules";
import type { CallContext, Services } from "./context";

/** The version `keyVersionId` of `key` (the primary when empty), recorded for the audit row. */
export async function selectVersion(s: Services, ctx: CallContext, key: KeyRecord, keyVersionId: string): Promise<KeyVersionRecord> {
  if (keyVersionId === "") return s.lookup.primaryVersion(ctx, key);
  const id = keyVersionId.toLowerCase();
  if (!isUuid(id)) throw invalidArgument("key_version_id", "must be a UUID");
  ctx.audit.keyVersionId = id;
  const version = await s.keys.getVersion(id);
  if (!version || version.keyId !== key.keyId) {
    throw new KmsError(ErrorCode.KeyVersionNotFound, `key version ${id} of key ${key.keyId} not found`);
  }
  return version;
}

/** The version's SubjectPublicKeyInfo (DER); every RSA, EC and Ed25519 version has one. */
export function publicKeyOf(version: KeyVersionRecord): Buffer {
  if (!version.publicKey || version.publicKey.length === 0) {
    throw new InternalError(`key version ${version.keyVersionId} has no stored public key`);
  }
  return version.publicKey;
}

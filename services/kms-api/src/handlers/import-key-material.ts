// ImportKeyMaterial: checks the import token, has the worker decrypt the caller's material and wrap it
// under the root key, and makes it the key's version. A key's material is fixed by its first import: a
// re-import (after DeleteKeyMaterial or expiry) must be the same material, compared by fingerprint, and
// gets the same version id, so ciphertexts made before decrypt again.
import { randomUUID, timingSafeEqual } from "node:crypto";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { status } from "@grpc/grpc-js";
import { getImportedMaterial, lockImportToken, markImportTokenUsed, recordImportedMaterial } from "@kms/db";
import type { ImportTokenRecord, KeyPatch } from "@kms/db";
import { ErrorCode, KmsError, invalidArgument } from "@kms/errors";
import { checkImportOperation, checkMaterialExpireTime, stateAfterImport, wrappingRsaSpec } from "@kms/key-rules";
import type { kms } from "@kms/proto";
import { changeKey } from "../key-changes";
import { toKeyMetadata } from "../keys";
import type { Handler } from "../pipeline/operation";
import { hashImportToken } from "./get-parameters-for-import";

/** An RSA-4096 OAEP block plus an RFC 5649 wrap of an RSA-4096 PKCS#8 fit well inside this. */
const MAX_ENCRYPTED_MATERIAL_BYTES = 8192;

const tokenError = (code: ErrorCode, problem: string) => new KmsError(status.INVALID_ARGUMENT, code, `import_token: ${problem}`);

/** The token must exist, be for this key, unused and unexpired: each failure has its own code. */
function checkToken(token: ImportTokenRecord | undefined, keyId: string, now: Date): asserts token is ImportTokenRecord & { wrappedPrivateKey: Buffer } {
  if (token === undefined) throw tokenError(ErrorCode.InvalidImportToken, "was not issued by this service");
  if (token.keyId !== keyId) throw tokenError(ErrorCode.InvalidImportToken, "was issued for another key");
  if (token.usedAt !== null || token.wrappedPrivateKey === null) throw tokenError(ErrorCode.ImportTokenUsed, "was already used; call GetParametersForImport again");
  if (token.expireTime.getTime() <= now.getTime()) {
    throw tokenError(ErrorCode.ImportTokenExpired, `expired at ${token.expireTime.toISOString()}; call GetParametersForImport again`);
  }
}

export const importKeyMaterial: Handler<typeof kms.ImportKeyMaterialRequestSchema, typeof kms.ImportKeyMaterialResponseSchema> = async (req, ctx, s) => {
  if (req.importToken === "") throw invalidArgument("import_token", "is required");
  const encrypted = req.encryptedKeyMaterial;
  if (encrypted.length === 0 || encrypted.length > MAX_ENCRYPTED_MATERIAL_BYTES) {
    throw invalidArgument("encrypted_key_material", `must be 1 to ${MAX_ENCRYPTED_MATERIAL_BYTES} bytes, got ${encrypted.length}`);
  }
  const materialExpireTime = req.keyMaterialExpireTime === undefined ? null : timestampDate(req.keyMaterialExpireTime);
  checkMaterialExpireTime(materialExpireTime ?? undefined, s.clock());
  const tokenHash = hashImportToken(req.importToken);

  const key = await changeKey(s, ctx, req.keyId, async (key, tx): Promise<KeyPatch> => {
    checkImportOperation(key, "ImportKeyMaterial");
    const now = s.clock();
    const token = await lockImportToken(tx, tokenHash);
    checkToken(token, key.keyId, now);
    const previous = await getImportedMaterial(tx, key.keyId);
    const keyVersionId = previous?.keyVersionId ?? randomUUID();
    ctx.audit.keyVersionId = keyVersionId;
    const imported = await s.worker.importKeyMaterial(
      {
        wrappingKey: {
          keyVersionId: token.tokenId,
          keySpec: wrappingRsaSpec(token.wrappingKeySpec),
          protectionLevel: token.protectionLevel,
          wrappedMaterial: token.wrappedPrivateKey,
          rootKeyId: token.rootKeyId,
        },
        wrappingAlgorithm: token.wrappingAlgorithm,
        encryptedKeyMaterial: encrypted,
        keySpec: key.keySpec,
        protectionLevel: key.protectionLevel,
        label: keyVersionId,
        keyVersionId,
      },
      ctx.deadline,
    );
    const fingerprint = Buffer.from(imported.fingerprint);
    // A key first imported by an earlier release has the fingerprint of its format 1 wrap under the
    // legacy root; the worker computes that one too while it has the legacy root.
    const same = (recorded: Buffer, given: Uint8Array) => given.length > 0 && recorded.length === given.length && timingSafeEqual(recorded, given);
    if (previous !== undefined && !same(previous.fingerprint, fingerprint) && !same(previous.fingerprint, imported.legacyFingerprint)) {
      throw new KmsError(
        status.INVALID_ARGUMENT,
        ErrorCode.IncorrectKeyMaterial,
        `encrypted_key_material: is not the material key ${key.keyId} was imported with; a key's material never changes`,
      );
    }
    await markImportTokenUsed(tx, token.tokenId, now);
    if (previous === undefined) {
      await recordImportedMaterial(tx, { keyId: key.keyId, keyVersionId, versionCreationTime: now, fingerprint });
    }
    if (key.primaryKeyVersionId === null) {
      await s.store.addPrimaryVersion(tx, {
        keyVersionId,
        keyId: key.keyId,
        creationTime: previous?.versionCreationTime ?? now,
        wrappedMaterial: Buffer.from(imported.wrappedMaterial),
        rootKeyId: imported.rootKeyId,
        publicKey: imported.publicKey.length > 0 ? Buffer.from(imported.publicKey) : null,
      });
    }
    return { keyState: stateAfterImport(key.keyState), materialExpireTime };
  });
  return { keyMetadata: toKeyMetadata(key) };
};

// ImportKeyMaterial: checks the import token, has the worker decrypt the caller's material and wrap it
// under the root key (before any row is locked), and makes it the key's version. A key's material is fixed by its first import: a
// re-import (after DeleteKeyMaterial or expiry) must be the same material, compared by fingerprint, and
// gets the same version id, so ciphertexts made before decrypt again.
import { randomUUID, timingSafeEqual } from "node:crypto";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { ImportTokenRecord, KeyVersionRecord } from "@kms/db";
import { ErrorCode, KmsError, invalidArgument, unavailable } from "@kms/errors";
import { checkImportOperation, checkMaterialExpireTime, stateAfterImport, wrappingRsaSpec } from "@kms/key-rules";
import type { kms } from "@kms/proto";
import type { CallContext, Services } from "../context";
import { changeLockedKey, currentKey } from "../key-changes";
import { toKeyMetadata } from "../keys";
import type { Handler } from "../pipeline/operation";
import { hashImportToken } from "./get-parameters-for-import";

/** An RSA-4096 OAEP block plus an RFC 5649 wrap of an RSA-4096 PKCS#8 fit well inside this. */
const MAX_ENCRYPTED_MATERIAL_BYTES = 8192;

const tokenError = (code: ErrorCode, problem: string) => new KmsError(code, `import_token: ${problem}`);

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

  const { keyId } = await s.lookup.find(ctx, req.keyId);
  // The worker unwraps the material with no row locked; the commit then re-checks everything under the
  // key's and the token's row locks. Only a first import racing another first import of the same key
  // finds the state moved (the other one fixed the version id): it starts again, against that import.
  for (let attempt = 1; ; attempt++) {
    const unwrapped = await unwrapMaterial(s, ctx, keyId, tokenHash, encrypted);
    const key = await changeLockedKey(s, ctx, keyId, async (locked) => {
      checkImportOperation(locked.record, "ImportKeyMaterial");
      const now = s.clock();
      const token = await locked.lockImportToken(tokenHash);
      checkToken(token?.record, keyId, now);
      const previous = await locked.importedMaterial();
      if (previous?.keyVersionId !== unwrapped.previous?.keyVersionId) return false;
      await token!.markUsed(now);
      const { version } = unwrapped;
      if (previous === undefined) {
        await locked.recordImportedMaterial({ keyVersionId: version.keyVersionId, versionCreationTime: now, fingerprint: unwrapped.fingerprint });
      }
      if (locked.record.primaryKeyVersionId === null) {
        await locked.addPrimaryVersion({ ...version, creationTime: previous?.versionCreationTime ?? now });
      }
      return locked.update({ keyState: stateAfterImport(locked.record.keyState), materialExpireTime });
    });
    if (key !== false) return { keyMetadata: toKeyMetadata(key) };
    if (attempt >= 2) throw unavailable("key import: the key's imported material changed twice meanwhile"); // cannot: it is fixed once
  }
};

/**
 * Checks the token and the key as committed now, has the worker decrypt the caller's material and wrap it
 * under the root key (no transaction open), and checks it is the key's material if it was imported before.
 */
async function unwrapMaterial(s: Services, ctx: CallContext, keyId: string, tokenHash: Buffer, encrypted: Uint8Array) {
  const key = await currentKey(s, ctx, keyId);
  checkImportOperation(key, "ImportKeyMaterial");
  const token = await s.store.importToken(tokenHash);
  checkToken(token, key.keyId, s.clock());
  const previous = await s.store.importedMaterial(key.keyId);
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
      ErrorCode.IncorrectKeyMaterial,
      `encrypted_key_material: is not the material key ${key.keyId} was imported with; a key's material never changes`,
    );
  }
  const version: KeyVersionRecord = {
    keyVersionId,
    keyId: key.keyId,
    creationTime: s.clock(),
    wrappedMaterial: Buffer.from(imported.wrappedMaterial),
    rootKeyId: imported.rootKeyId,
    publicKey: imported.publicKey.length > 0 ? Buffer.from(imported.publicKey) : null,
  };
  return { previous, fingerprint, version };
}

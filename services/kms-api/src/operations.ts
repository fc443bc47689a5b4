// Every kms.v1 operation: its handler and what the pipeline must know about its messages (which field
// names the key, the encryption context, batch items, the fields that hold secrets). Fronts look
// operations up here by name; one missing here answers UNIMPLEMENTED.
import type { DescMessage } from "@bufbuild/protobuf";
import { integrityOf } from "@kms/integrity";
import type { Integrity } from "@kms/integrity";
import { kms } from "@kms/proto";
import { listAuditCheckpoints, listAuditEvents, verifyAuditLog } from "./handlers/audit";
import { createAlias, deleteAlias, listAliases, listAliasesByKeyId, updateAlias } from "./handlers/aliases";
import { asymmetricDecrypt } from "./handlers/asymmetric-decrypt";
import { asymmetricEncrypt } from "./handlers/asymmetric-encrypt";
import { asymmetricSign } from "./handlers/asymmetric-sign";
import { asymmetricVerify } from "./handlers/asymmetric-verify";
import { batchDecrypt, batchEncrypt, batchGenerateDataKey } from "./handlers/batch";
import { MAX_BATCH_ITEMS } from "./handlers/batch";
import { createKey } from "./handlers/create-key";
import { decrypt } from "./handlers/decrypt";
import { deleteKeyMaterial } from "./handlers/delete-key-material";
import { deriveSharedSecret } from "./handlers/derive-shared-secret";
import { describeKey } from "./handlers/describe-key";
import { encrypt } from "./handlers/encrypt";
import { generateDataKey, generateDataKeyWithoutPlaintext } from "./handlers/generate-data-key";
import { generateDataKeyPair, generateDataKeyPairWithoutPlaintext } from "./handlers/generate-data-key-pair";
import { generateMac } from "./handlers/generate-mac";
import { generateRandom } from "./handlers/generate-random";
import { getParametersForImport } from "./handlers/get-parameters-for-import";
import { getPublicKey } from "./handlers/get-public-key";
import { importKeyMaterial } from "./handlers/import-key-material";
import { createGrant, listGrants, listRetirableGrants, retireGrant, revokeGrant } from "./handlers/grants";
import { getKeyPolicy, setKeyPolicy } from "./handlers/key-policy";
import { cancelKeyDeletion, disableKey, enableKey, scheduleKeyDeletion, setDeletionProtection, updateKeyDescription } from "./handlers/lifecycle";
import { listKeys } from "./handlers/list-keys";
import { reEncrypt } from "./handlers/re-encrypt";
import { rotateRootKey } from "./handlers/rotate-root-key";
import { listResourceTags, tagResource, untagResource } from "./handlers/tags";
import { verifyMac } from "./handlers/verify-mac";
import { createKeyVersion, describeKeyVersion, listKeyVersions, updateRotationPolicy } from "./handlers/versions";
import { operation } from "./pipeline/operation";
import type { Operation } from "./pipeline/operation";

const m = kms.KeyManagementService.method;
const byKeyId = { keyId: (r: { keyId: string }) => r.keyId };
/** dry_run and grant_tokens (docs/grants.md): every cryptographic request has both. */
const checkable = { dryRun: (r: { dryRun: boolean }) => r.dryRun, grantTokens: (r: { grantTokens: string[] }) => r.grantTokens };
const withGrantTokens = { grantTokens: (r: { grantTokens: string[] }) => r.grantTokens };
const withDryRun = { dryRun: (r: { dryRun: boolean }) => r.dryRun };
const withContext = { encryptionContext: (r: { encryptionContext: Record<string, string> }) => r.encryptionContext };
/** More than a batch may hold is refused by its handler (INVALID_ARGUMENT), not counted. */
const items = (r: { items: unknown[] }) => (r.items.length <= MAX_BATCH_ITEMS ? r.items.length : 1);
/** The RPC's byte fields that come with a CRC32C (@kms/integrity's table), checked and filled by the pipeline. */
function crc32c(method: { name: string }): { checksums: Integrity } {
  const checksums = integrityOf(method.name);
  if (!checksums) throw new Error(`@kms/integrity has no CRC32C fields for ${method.name}`);
  return { checksums };
}

const ALL: Operation[] = [
  operation(m.createKey, createKey),
  operation(m.describeKey, describeKey, { ...byKeyId, ...withGrantTokens }),
  operation(m.listKeys, listKeys),
  operation(m.updateKeyDescription, updateKeyDescription, byKeyId),
  operation(m.enableKey, enableKey, byKeyId),
  operation(m.disableKey, disableKey, byKeyId),
  operation(m.scheduleKeyDeletion, scheduleKeyDeletion, byKeyId),
  operation(m.cancelKeyDeletion, cancelKeyDeletion, byKeyId),
  operation(m.setDeletionProtection, setDeletionProtection, byKeyId),
  operation(m.createKeyVersion, createKeyVersion, byKeyId),
  operation(m.describeKeyVersion, describeKeyVersion, byKeyId),
  operation(m.listKeyVersions, listKeyVersions, byKeyId),
  operation(m.updateRotationPolicy, updateRotationPolicy, byKeyId),

  operation(m.encrypt, encrypt, { ...checkable, ...crc32c(m.encrypt), ...byKeyId, ...withContext, requestSecrets: (r) => [r.plaintext] }),
  operation(m.decrypt, decrypt, { ...checkable, ...crc32c(m.decrypt), ...withContext, responseSecrets: (r) => [r.plaintext] }),
  operation(m.reEncrypt, reEncrypt, { ...checkable, ...crc32c(m.reEncrypt), encryptionContext: (r) => r.destinationEncryptionContext }),
  operation(m.generateDataKey, generateDataKey, { ...checkable, ...crc32c(m.generateDataKey), ...byKeyId, ...withContext, responseSecrets: (r) => [r.plaintext] }),
  operation(m.generateDataKeyWithoutPlaintext, generateDataKeyWithoutPlaintext, { ...checkable, ...crc32c(m.generateDataKeyWithoutPlaintext), ...byKeyId, ...withContext }),
  operation(m.generateDataKeyPair, generateDataKeyPair, { ...checkable, ...crc32c(m.generateDataKeyPair), ...byKeyId, ...withContext, responseSecrets: (r) => [r.privateKeyPlaintext] }),
  operation(m.generateDataKeyPairWithoutPlaintext, generateDataKeyPairWithoutPlaintext, { ...checkable, ...crc32c(m.generateDataKeyPairWithoutPlaintext), ...byKeyId, ...withContext }),
  operation(m.batchEncrypt, batchEncrypt, { ...crc32c(m.batchEncrypt), items, requestSecrets: (r) => r.items.map((i) => i.plaintext) }),
  operation(m.batchDecrypt, batchDecrypt, { ...crc32c(m.batchDecrypt), items, responseSecrets: (r) => (r.results ?? []).map((i) => i.response?.plaintext) }),
  operation(m.batchGenerateDataKey, batchGenerateDataKey, { ...crc32c(m.batchGenerateDataKey), items, responseSecrets: (r) => (r.results ?? []).map((i) => i.response?.plaintext) }),

  operation(m.asymmetricSign, asymmetricSign, { ...checkable, ...byKeyId, ...crc32c(m.asymmetricSign) }),
  operation(m.asymmetricVerify, asymmetricVerify, { ...checkable, ...byKeyId, ...crc32c(m.asymmetricVerify) }),
  operation(m.asymmetricEncrypt, asymmetricEncrypt, { ...checkable, ...crc32c(m.asymmetricEncrypt), ...byKeyId, requestSecrets: (r) => [r.plaintext] }),
  operation(m.asymmetricDecrypt, asymmetricDecrypt, { ...checkable, ...crc32c(m.asymmetricDecrypt), ...byKeyId, responseSecrets: (r) => [r.plaintext] }),
  operation(m.getPublicKey, getPublicKey, { ...byKeyId, ...withGrantTokens }),
  // The shared secret is zeroed once the reply is encoded; it is never logged (nor is any response field).
  operation(m.deriveSharedSecret, deriveSharedSecret, { ...checkable, ...crc32c(m.deriveSharedSecret), ...byKeyId, responseSecrets: (r) => [r.sharedSecret] }),
  operation(m.generateMac, generateMac, { ...checkable, ...byKeyId, ...crc32c(m.generateMac) }),
  operation(m.verifyMac, verifyMac, { ...checkable, ...byKeyId, ...crc32c(m.verifyMac) }),
  operation(m.generateRandom, generateRandom, crc32c(m.generateRandom)),

  operation(m.getParametersForImport, getParametersForImport, byKeyId),
  operation(m.importKeyMaterial, importKeyMaterial, byKeyId),
  operation(m.deleteKeyMaterial, deleteKeyMaterial, byKeyId),

  operation(m.createAlias, createAlias, byKeyId),
  operation(m.updateAlias, updateAlias, byKeyId),
  operation(m.deleteAlias, deleteAlias),
  operation(m.listAliases, listAliases),
  operation(m.listAliasesByKeyId, listAliasesByKeyId, byKeyId),
  operation(m.tagResource, tagResource, byKeyId),
  operation(m.untagResource, untagResource, byKeyId),
  operation(m.listResourceTags, listResourceTags, byKeyId),
  operation(m.getKeyPolicy, getKeyPolicy, byKeyId),
  operation(m.setKeyPolicy, setKeyPolicy, byKeyId),

  operation(m.createGrant, createGrant, { ...byKeyId, ...withDryRun }),
  operation(m.listGrants, listGrants, byKeyId),
  operation(m.listRetirableGrants, listRetirableGrants),
  operation(m.retireGrant, retireGrant, { ...byKeyId, ...withDryRun }),
  operation(m.revokeGrant, revokeGrant, { ...byKeyId, ...withDryRun }),

  operation(m.listAuditEvents, listAuditEvents, byKeyId),
  operation(m.verifyAuditLog, verifyAuditLog),
  operation(m.listAuditCheckpoints, listAuditCheckpoints),
  operation(m.rotateRootKey, rotateRootKey),
] as unknown as Operation[];

/** The operations by kms.v1 RPC name ("Encrypt"). */
export const OPERATIONS: ReadonlyMap<string, Operation<DescMessage, DescMessage>> = new Map(ALL.map((op) => [op.name, op]));

import { buildAad, parseBlob, validateEncryptionContext } from "@kms/ciphertext";
import { invalidCiphertext } from "@kms/errors";
import { checkUsable } from "@kms/key-rules";
import type { kms } from "@kms/proto";
import { wrappedKey } from "../keys";
import type { Handler } from "../rpc";

export const decrypt: Handler<typeof kms.DecryptRequestSchema, typeof kms.DecryptResponseSchema> = async (req, ctx, s) => {
  validateEncryptionContext(req.encryptionContext);
  const blob = parseBlob(req.ciphertextBlob);
  // A blob naming a version we do not have is just another invalid ciphertext: same error.
  const version = await s.store.getVersion(blob.keyVersionId);
  if (!version) throw invalidCiphertext();
  const key = await s.store.getKey(version.keyId);
  if (!key) throw invalidCiphertext();
  ctx.audit.keyId = key.keyId;
  ctx.audit.keyVersionId = version.keyVersionId;
  checkUsable(key, "Decrypt");
  const { plaintext } = await s.worker.decrypt(
    { key: wrappedKey(key, version), sealed: blob.sealed, aad: buildAad(blob.header, req.encryptionContext) },
    ctx.deadline,
  );
  return { plaintext, keyId: key.keyId, keyVersionId: version.keyVersionId };
};

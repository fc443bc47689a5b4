import { buildAad, parseBlob, validateEncryptionContext } from "@kms/ciphertext";
import { checkUsable } from "@kms/key-rules";
import type { kms } from "@kms/proto";
import { wrappedKey } from "../keys";
import { dryRunStop } from "../pipeline/dry-run";
import type { Handler } from "../pipeline/operation";

export const decrypt: Handler<typeof kms.DecryptRequestSchema, typeof kms.DecryptResponseSchema> = async (req, ctx, s) => {
  validateEncryptionContext(req.encryptionContext);
  const blob = parseBlob(req.ciphertextBlob);
  const { key, version } = await s.lookup.ofBlob(ctx, blob.keyVersionId);
  ctx.audit.keyId = key.keyId;
  ctx.audit.keyVersionId = version.keyVersionId;
  checkUsable(key, "Decrypt");
  // A dry run checks the blob's form and its key, not whether it authenticates (that is the decryption).
  dryRunStop(ctx);
  const { plaintext } = await s.worker.decrypt(
    { key: wrappedKey(key, version), sealed: blob.sealed, aad: buildAad(blob.header, req.encryptionContext) },
    ctx.deadline,
  );
  return { plaintext, keyId: key.keyId, keyVersionId: version.keyVersionId };
};

import { assembleBlob, buildAad, encodeHeader, validateEncryptionContext } from "@kms/ciphertext";
import { checkUsable, validatePlaintext } from "@kms/key-rules";
import type { kms } from "@kms/proto";
import { wrappedKey } from "../keys";
import { dryRunStop } from "../pipeline/dry-run";
import type { Handler } from "../pipeline/operation";

export const encrypt: Handler<typeof kms.EncryptRequestSchema, typeof kms.EncryptResponseSchema> = async (req, ctx, s) => {
  validatePlaintext(req.plaintext);
  validateEncryptionContext(req.encryptionContext);
  const key = await s.lookup.find(ctx, req.keyId);
  checkUsable(key, "Encrypt");
  const version = await s.lookup.primaryVersion(ctx, key);
  const header = encodeHeader(version.keyVersionId);
  // Counted before the worker call: an imported key's version past its limit is refused here.
  await s.usage.take(key, version, ctx.dryRun);
  dryRunStop(ctx);
  const { sealed } = await s.worker.encrypt(
    { key: wrappedKey(key, version), plaintext: req.plaintext, aad: buildAad(header, req.encryptionContext) },
    ctx.deadline,
  );
  return { ciphertextBlob: assembleBlob(header, sealed), keyId: key.keyId, keyVersionId: version.keyVersionId };
};

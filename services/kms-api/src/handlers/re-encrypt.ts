// ReEncrypt: decrypts under the blob's key and encrypts under the destination key in one worker call,
// so the plaintext never reaches kms-api.
import { assembleBlob, buildAad, encodeHeader, parseBlob, validateEncryptionContext } from "@kms/ciphertext";
import { checkUsable } from "@kms/key-rules";
import type { kms } from "@kms/proto";
import { wrappedKey } from "../keys";
import { dryRunStop } from "../pipeline/dry-run";
import type { Handler } from "../pipeline/operation";

export const reEncrypt: Handler<typeof kms.ReEncryptRequestSchema, typeof kms.ReEncryptResponseSchema> = async (req, ctx, s) => {
  validateEncryptionContext(req.sourceEncryptionContext, "source_encryption_context");
  validateEncryptionContext(req.destinationEncryptionContext, "destination_encryption_context");
  const blob = parseBlob(req.ciphertextBlob);
  // Two permissions, as AWS splits them: kms:ReEncryptFrom on the source, kms:ReEncryptTo on the destination.
  const source = await s.lookup.ofBlob(ctx, blob.keyVersionId, { action: "kms:ReEncryptFrom", encryptionContext: req.sourceEncryptionContext });
  checkUsable(source.key, "ReEncrypt");
  const destination = await s.lookup.find(ctx, req.destinationKeyId, "destination_key_id", {
    action: "kms:ReEncryptTo",
    encryptionContext: req.destinationEncryptionContext,
  });
  checkUsable(destination, "ReEncrypt");
  const version = await s.lookup.primaryVersion(ctx, destination);
  const header = encodeHeader(version.keyVersionId);
  // Counted before the worker call: an imported destination's version past its limit is refused here.
  await s.usage.take(destination, version, ctx.dryRun);
  dryRunStop(ctx);
  const { sealed } = await s.worker.reEncrypt(
    {
      sourceKey: wrappedKey(source.key, source.version),
      sourceSealed: blob.sealed,
      sourceAad: buildAad(blob.header, req.sourceEncryptionContext),
      destinationKey: wrappedKey(destination, version),
      destinationAad: buildAad(header, req.destinationEncryptionContext),
    },
    ctx.deadline,
  );
  return {
    ciphertextBlob: assembleBlob(header, sealed),
    sourceKeyId: source.key.keyId,
    sourceKeyVersionId: source.version.keyVersionId,
    keyId: destination.keyId,
    keyVersionId: version.keyVersionId,
  };
};

import { checkEncryptionAlgorithm, checkUsable } from "@kms/key-rules";
import type { kms } from "@kms/proto";
import { selectVersion } from "../key-versions";
import { wrappedKey } from "../keys";
import { dryRunStop } from "../pipeline/dry-run";
import type { Handler } from "../pipeline/operation";

/** Every ciphertext that does not decrypt gets the one invalidCiphertext() error (no padding oracle). */
export const asymmetricDecrypt: Handler<typeof kms.AsymmetricDecryptRequestSchema, typeof kms.AsymmetricDecryptResponseSchema> = async (
  req,
  ctx,
  s,
) => {
  const key = await s.lookup.find(ctx, req.keyId);
  checkUsable(key, "AsymmetricDecrypt");
  checkEncryptionAlgorithm(key.keySpec, req.algorithm);
  const version = await selectVersion(s, ctx, key, req.keyVersionId);
  dryRunStop(ctx);
  const { plaintext } = await s.worker.asymmetricDecrypt(
    { key: wrappedKey(key, version), algorithm: req.algorithm, ciphertext: req.ciphertextBlob },
    ctx.deadline,
  );
  return { plaintext, keyId: key.keyId, keyVersionId: version.keyVersionId };
};

// RSAES-OAEP with the stored public key, here in kms-api: a public-key operation needs neither the worker
// nor the HSM.
import { constants, createPublicKey, publicEncrypt } from "node:crypto";
import { invalidArgument } from "@kms/errors";
import { checkEncryptionAlgorithm, checkUsable } from "@kms/key-rules";
import { kmsResources } from "@kms/proto";
import type { kms } from "@kms/proto";
import { publicKeyOf, selectVersion } from "../key-versions";

import { dryRunStop } from "../pipeline/dry-run";
import type { Handler } from "../pipeline/operation";

export const asymmetricEncrypt: Handler<typeof kms.AsymmetricEncryptRequestSchema, typeof kms.AsymmetricEncryptResponseSchema> = async (
  req,
  ctx,
  s,
) => {
  const key = await s.lookup.find(ctx, req.keyId);
  checkUsable(key, "AsymmetricEncrypt");
  const { maxPlaintextBytes } = checkEncryptionAlgorithm(key.keySpec, req.algorithm);
  if (req.plaintext.length < 1 || req.plaintext.length > maxPlaintextBytes) {
    throw invalidArgument("plaintext", `must be 1 to ${maxPlaintextBytes} bytes for this key and algorithm, got ${req.plaintext.length}`);
  }
  const version = await selectVersion(s, ctx, key, req.keyVersionId);
  dryRunStop(ctx);
  const publicKey = createPublicKey({ key: publicKeyOf(version), format: "der", type: "spki" });
  const oaepHash = req.algorithm === kmsResources.EncryptionAlgorithm.RSAES_OAEP_SHA_1 ? "sha1" : "sha256";
  const ciphertextBlob = publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash }, req.plaintext);
  return { ciphertextBlob, keyId: key.keyId, keyVersionId: version.keyVersionId };
};

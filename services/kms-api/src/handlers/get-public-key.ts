import { allowedKeyAgreementAlgorithms, checkUsable } from "@kms/key-rules";
import { kmsResources } from "@kms/proto";
import type { kms } from "@kms/proto";
import { publicKeyOf, selectVersion } from "../key-versions";

import type { Handler } from "../pipeline/operation";

/** PEM of a DER SubjectPublicKeyInfo (RFC 7468), for any algorithm: node:crypto on Node 20 knows no ML-DSA. */
function pem(der: Buffer): string {
  const lines = der.toString("base64").match(/.{1,64}/g) ?? [];
  return `-----BEGIN PUBLIC KEY-----\n${lines.join("\n")}\n-----END PUBLIC KEY-----\n`;
}

/** PEM SubjectPublicKeyInfo from the stored DER: no worker call. */
export const getPublicKey: Handler<typeof kms.GetPublicKeyRequestSchema, typeof kms.GetPublicKeyResponseSchema> = async (req, ctx, s) => {
  const key = await s.lookup.find(ctx, req.keyId);
  checkUsable(key, "GetPublicKey");
  const version = await selectVersion(s, ctx, key, req.keyVersionId);
  const der = publicKeyOf(version);
  const keyAgreementAlgorithms = key.keyUsage === kmsResources.KeyUsage.KEY_AGREEMENT ? allowedKeyAgreementAlgorithms(key.keySpec) : [];
  return {
    publicKey: pem(Buffer.from(der)),
    keyId: key.keyId,
    keyVersionId: version.keyVersionId,
    keySpec: key.keySpec,
    keyUsage: key.keyUsage,
    keyAgreementAlgorithms,
  };
};

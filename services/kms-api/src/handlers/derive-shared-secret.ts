import { checkKeyAgreementAlgorithm, checkUsable, KEY_SPECS, peerPublicKey } from "@kms/key-rules";
import type { kms } from "@kms/proto";
import { selectVersion } from "../key-versions";
import { wrappedKey } from "../keys";
import { dryRunStop } from "../pipeline/dry-run";
import type { Handler } from "../pipeline/operation";

/**
 * AWS's DeriveSharedSecret: ECDH with the key's private half (in the worker or the HSM) and the peer's
 * public key, checked here after the key policy allowed the call (the worker checks it again).
 */
export const deriveSharedSecret: Handler<typeof kms.DeriveSharedSecretRequestSchema, typeof kms.DeriveSharedSecretResponseSchema> = async (
  req,
  ctx,
  s,
) => {
  const key = await s.lookup.find(ctx, req.keyId);
  checkUsable(key, "DeriveSharedSecret");
  checkKeyAgreementAlgorithm(key.keySpec, req.keyAgreementAlgorithm);
  const family = KEY_SPECS.get(key.keySpec)?.family;
  if (family?.kind !== "ec") throw new RangeError(`no curve for key spec ${key.keySpec}`);
  peerPublicKey(req.publicKey, family.curve);
  const version = await selectVersion(s, ctx, key, req.keyVersionId);
  dryRunStop(ctx);
  const { sharedSecret } = await s.worker.deriveSharedSecret({ key: wrappedKey(key, version), publicKey: req.publicKey }, ctx.deadline);
  return {
    sharedSecret,
    keyId: key.keyId,
    keyVersionId: version.keyVersionId,
    keyAgreementAlgorithm: req.keyAgreementAlgorithm,
    keyOrigin: key.origin,
  };
};

import { checkSigningAlgorithm, checkUsable } from "@kms/key-rules";
import type { kms } from "@kms/proto";
import { publicKeyOf, selectVersion } from "../key-versions";

import { dryRunStop } from "../pipeline/dry-run";
import type { Handler } from "../pipeline/operation";
import { workerSignInput } from "./sign-input";

/** A signature that does not verify is value=false, not an error. The worker checks it against the public key. */
export const asymmetricVerify: Handler<typeof kms.AsymmetricVerifyRequestSchema, typeof kms.AsymmetricVerifyResponseSchema> = async (
  req,
  ctx,
  s,
) => {
  const key = await s.lookup.find(ctx, req.keyId);
  checkUsable(key, "AsymmetricVerify");
  checkSigningAlgorithm(key.keySpec, req.algorithm);
  const input = workerSignInput(req.algorithm, req.input);
  const version = await selectVersion(s, ctx, key, req.keyVersionId);
  dryRunStop(ctx);
  const { valid } = await s.worker.verify(
    { publicKey: publicKeyOf(version), keySpec: key.keySpec, algorithm: req.algorithm, input, signature: req.value },
    ctx.deadline,
  );
  return { value: valid, keyId: key.keyId, keyVersionId: version.keyVersionId };
};

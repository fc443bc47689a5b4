import { checkSigningAlgorithm, checkUsable } from "@kms/key-rules";
import type { kms } from "@kms/proto";
import { selectVersion } from "../key-versions";
import { wrappedKey } from "../keys";
import { dryRunStop } from "../pipeline/dry-run";
import type { Handler } from "../pipeline/operation";
import { workerSignInput } from "./sign-input";

export const asymmetricSign: Handler<typeof kms.AsymmetricSignRequestSchema, typeof kms.AsymmetricSignResponseSchema> = async (
  req,
  ctx,
  s,
) => {
  const key = await s.lookup.find(ctx, req.keyId);
  checkUsable(key, "AsymmetricSign");
  checkSigningAlgorithm(key.keySpec, req.algorithm);
  const input = workerSignInput(req.algorithm, req.input);
  const version = await selectVersion(s, ctx, key, req.keyVersionId);
  dryRunStop(ctx);
  const { signature } = await s.worker.sign({ key: wrappedKey(key, version), algorithm: req.algorithm, input }, ctx.deadline);
  return { value: signature, keyId: key.keyId, keyVersionId: version.keyVersionId };
};

import { checkUsable, validateMessage } from "@kms/key-rules";
import type { kms } from "@kms/proto";
import { wrappedKey } from "../keys";
import { dryRunStop } from "../pipeline/dry-run";
import type { Handler } from "../pipeline/operation";

/** A MAC that does not match is mac_valid=false; the worker compares in constant time. */
export const verifyMac: Handler<typeof kms.VerifyMacRequestSchema, typeof kms.VerifyMacResponseSchema> = async (req, ctx, s) => {
  validateMessage(req.message);
  const key = await s.lookup.find(ctx, req.keyId);
  checkUsable(key, "VerifyMac");
  const version = await s.lookup.primaryVersion(ctx, key);
  dryRunStop(ctx);
  const { macValid } = await s.worker.verifyMac({ key: wrappedKey(key, version), message: req.message, mac: req.mac }, ctx.deadline);
  return { macValid, keyId: key.keyId, keyVersionId: version.keyVersionId };
};

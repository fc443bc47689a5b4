import { checkUsable, validateMessage } from "@kms/key-rules";
import type { kms } from "@kms/proto";
import { wrappedKey } from "../keys";
import { dryRunStop } from "../pipeline/dry-run";
import type { Handler } from "../pipeline/operation";

export const generateMac: Handler<typeof kms.GenerateMacRequestSchema, typeof kms.GenerateMacResponseSchema> = async (req, ctx, s) => {
  validateMessage(req.message);
  const key = await s.lookup.find(ctx, req.keyId);
  checkUsable(key, "GenerateMac");
  const version = await s.lookup.primaryVersion(ctx, key);
  dryRunStop(ctx);
  const { mac } = await s.worker.generateMac({ key: wrappedKey(key, version), message: req.message }, ctx.deadline);
  return { mac, keyId: key.keyId, keyVersionId: version.keyVersionId };
};

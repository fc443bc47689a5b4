// RotateRootKey: one step of the root rotation in progress (root-rotation.ts), for KMS_ADMINS only.
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { invalidArgument } from "@kms/errors";
import { isUuid } from "@kms/key-rules";
import type { kms } from "@kms/proto";
import type { Handler } from "../pipeline/operation";
import { DEFAULT_BATCH, MAX_BATCH, rotateRootStep } from "../root-rotation";

export const rotateRootKey: Handler<typeof kms.RotateRootKeyRequestSchema, typeof kms.RotateRootKeyResponseSchema> = async (req, ctx, s) => {
  s.authorizer.admin(ctx);
  if (req.rotationId !== "" && !isUuid(req.rotationId)) throw invalidArgument("rotation_id", "must be a rotation UUID");
  if (req.batchSize < 0 || req.batchSize > MAX_BATCH) throw invalidArgument("batch_size", `must be between 1 and ${MAX_BATCH} (0: ${DEFAULT_BATCH})`);
  const r = await rotateRootStep(s, ctx, req.rotationId.toLowerCase(), req.batchSize || DEFAULT_BATCH);
  return {
    rotationId: r.rotationId,
    state: r.state,
    newRootKeyId: r.newRootKeyId,
    oldRootKeyId: r.oldRootKeyId,
    legacyRootKeyId: r.legacyRootKeyId,
    rewrappedVersions: BigInt(r.rewrappedVersions),
    remainingVersions: BigInt(r.remainingVersions),
    retainedVersions: BigInt(r.retainedVersions),
    retainedReason: r.retainedReason,
    destroyedRootKeyIds: r.destroyedRootKeyIds === "" ? [] : r.destroyedRootKeyIds.split(","),
    sourceRootKeyId: r.sourceRootKeyId,
    ...(r.retireTime === null ? {} : { retireTime: timestampFromDate(r.retireTime) }),
  };
};

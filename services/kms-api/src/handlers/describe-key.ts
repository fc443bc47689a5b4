import type { kms } from "@kms/proto";
import { toKeyMetadata } from "../keys";
import type { Handler } from "../pipeline/operation";

export const describeKey: Handler<typeof kms.DescribeKeyRequestSchema, typeof kms.DescribeKeyResponseSchema> = async (
  req,
  ctx,
  s,
) => ({ keyMetadata: toKeyMetadata(await s.lookup.find(ctx, req.keyId)) });

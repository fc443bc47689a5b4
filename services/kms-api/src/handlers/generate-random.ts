import { validateRandomBytes } from "@kms/key-rules";
import type { kms } from "@kms/proto";
import type { Handler } from "../pipeline/operation";

/** Random bytes from the HSM's generator (node:crypto on the software-root backend). */
export const generateRandom: Handler<typeof kms.GenerateRandomRequestSchema, typeof kms.GenerateRandomResponseSchema> = async (req, ctx, s) => {
  validateRandomBytes(req.numberOfBytes);
  const { random } = await s.worker.generateRandom({ numberOfBytes: req.numberOfBytes }, ctx.deadline);
  return { random };
};

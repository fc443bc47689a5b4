import { assembleBlob } from "@kms/ciphertext";
import { dataKeyLength } from "@kms/key-rules";
import type { CryptoOperation } from "@kms/key-rules";
import type { kms } from "@kms/proto";
import type { CallContext, Services } from "../context";
import { wrappedKey } from "../keys";
import type { Handler } from "../pipeline/operation";
import { sealingTarget } from "./sealing-target";

interface DataKeyRequest {
  keyId: string;
  keySpec: number;
  numberOfBytes: number;
  encryptionContext: Record<string, string>;
}

/** Shared by both RPCs: the data key is made and sealed in the worker in one call. */
async function generate(req: DataKeyRequest, ctx: CallContext, s: Services, operation: CryptoOperation, withPlaintext: boolean) {
  const length = dataKeyLength(req.keySpec, req.numberOfBytes);
  const { key, version, header, aad } = await sealingTarget(s, ctx, req.keyId, req.encryptionContext, operation);
  const result = await s.worker.generateDataKey(
    {
      key: wrappedKey(key, version),
      numberOfBytes: length,
      aad,
      returnPlaintext: withPlaintext,
    },
    ctx.deadline,
  );
  return {
    plaintext: result.plaintext,
    ciphertextBlob: assembleBlob(header, result.sealed),
    keyId: key.keyId,
    keyVersionId: version.keyVersionId,
  };
}

export const generateDataKey: Handler<typeof kms.GenerateDataKeyRequestSchema, typeof kms.GenerateDataKeyResponseSchema> = (
  req,
  ctx,
  s,
) => generate(req, ctx, s, "GenerateDataKey", true);

export const generateDataKeyWithoutPlaintext: Handler<
  typeof kms.GenerateDataKeyWithoutPlaintextRequestSchema,
  typeof kms.GenerateDataKeyWithoutPlaintextResponseSchema
> = async (req, ctx, s) => {
  const { ciphertextBlob, keyId, keyVersionId } = await generate(req, ctx, s, "GenerateDataKeyWithoutPlaintext", false);
  return { ciphertextBlob, keyId, keyVersionId };
};

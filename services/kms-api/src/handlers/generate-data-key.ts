import { assembleBlob, buildAad, encodeHeader, validateEncryptionContext } from "@kms/ciphertext";
import { checkUsable, dataKeyLength } from "@kms/key-rules";
import type { CryptoOperation } from "@kms/key-rules";
import type { kms } from "@kms/proto";
import type { CallContext, Services } from "../context";
import { wrappedKey } from "../keys";
import type { Handler } from "../pipeline/operation";

interface DataKeyRequest {
  keyId: string;
  keySpec: number;
  numberOfBytes: number;
  encryptionContext: Record<string, string>;
}

/** Shared by both RPCs: the data key is made and sealed in the worker in one call. */
async function generate(req: DataKeyRequest, ctx: CallContext, s: Services, operation: CryptoOperation, withPlaintext: boolean) {
  const length = dataKeyLength(req.keySpec, req.numberOfBytes);
  validateEncryptionContext(req.encryptionContext);
  const key = await s.lookup.find(ctx, req.keyId);
  checkUsable(key, operation);
  const version = await s.lookup.primaryVersion(ctx, key);
  const header = encodeHeader(version.keyVersionId);
  // Counted before the worker call: an imported key's version past its limit is refused here.
  await s.usage.take(key, version);
  const result = await s.worker.generateDataKey(
    {
      key: wrappedKey(key, version),
      numberOfBytes: length,
      aad: buildAad(header, req.encryptionContext),
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

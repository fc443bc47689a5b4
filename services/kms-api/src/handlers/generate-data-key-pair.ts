// GenerateDataKeyPair and GenerateDataKeyPairWithoutPlaintext: the worker makes the pair and seals its
// PKCS#8 private key under the CMK's primary version with the header and context as Encrypt binds them,
// so the blob is an ordinary ciphertext that Decrypt opens.
import { assembleBlob } from "@kms/ciphertext";
import { dataKeyPairFamily } from "@kms/key-rules";
import type { CryptoOperation } from "@kms/key-rules";
import type { kms } from "@kms/proto";
import type { CallContext, Services } from "../context";
import { wrappedKey } from "../keys";
import type { Handler } from "../pipeline/operation";
import { sealingTarget } from "./sealing-target";

interface DataKeyPairRequest {
  keyId: string;
  keyPairSpec: number;
  encryptionContext: Record<string, string>;
}

async function generatePair(req: DataKeyPairRequest, ctx: CallContext, s: Services, operation: CryptoOperation, withPlaintext: boolean) {
  dataKeyPairFamily(req.keyPairSpec);
  const { key, version, header, aad } = await sealingTarget(s, ctx, req.keyId, req.encryptionContext, operation);
  const result = await s.worker.generateDataKeyPair(
    {
      key: wrappedKey(key, version),
      keyPairSpec: req.keyPairSpec,
      aad,
      returnPrivateKey: withPlaintext,
    },
    ctx.deadline,
  );
  return {
    privateKeyPlaintext: result.privateKey,
    privateKeyCiphertextBlob: assembleBlob(header, result.sealed),
    publicKey: result.publicKey,
    keyId: key.keyId,
    keyVersionId: version.keyVersionId,
    keyPairSpec: req.keyPairSpec,
  };
}

export const generateDataKeyPair: Handler<typeof kms.GenerateDataKeyPairRequestSchema, typeof kms.GenerateDataKeyPairResponseSchema> = (req, ctx, s) =>
  generatePair(req, ctx, s, "GenerateDataKeyPair", true);

export const generateDataKeyPairWithoutPlaintext: Handler<
  typeof kms.GenerateDataKeyPairWithoutPlaintextRequestSchema,
  typeof kms.GenerateDataKeyPairWithoutPlaintextResponseSchema
> = async (req, ctx, s) => {
  const { privateKeyCiphertextBlob, publicKey, keyId, keyVersionId, keyPairSpec } = await generatePair(req, ctx, s, "GenerateDataKeyPairWithoutPlaintext", false);
  return { privateKeyCiphertextBlob, publicKey, keyId, keyVersionId, keyPairSpec };
};

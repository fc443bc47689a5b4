// GetParametersForImport: a fresh RSA wrapping key for one import into one ORIGIN_EXTERNAL key, and an
// opaque token that names it. The wrapping key is made by the worker like any RSA key version (in the HSM
// where there is one) and its private half is stored only wrapped under the root key, so every replica's
// worker can use it, after restarts too. The caller's token is 32 random bytes; only its SHA-256 is stored.
import { createHash, createPublicKey, randomBytes, randomUUID } from "node:crypto";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { checkImportOperation, checkWrappingChoice, IMPORT_TOKEN_LIFETIME_MS, wrappingRsaSpec } from "@kms/key-rules";
import { kmsResources } from "@kms/proto";
import type { kms } from "@kms/proto";
import { auditedTransaction } from "../audited-change";

import type { Handler } from "../pipeline/operation";

const TOKEN_BYTES = 32;

/** What import_tokens.token_hash holds for a token. */
export function hashImportToken(token: string): Buffer {
  return createHash("sha256").update(token, "utf8").digest();
}

export const getParametersForImport: Handler<typeof kms.GetParametersForImportRequestSchema, typeof kms.GetParametersForImportResponseSchema> = async (
  req,
  ctx,
  s,
) => {
  checkWrappingChoice(req.wrappingAlgorithm, req.wrappingKeySpec);
  const key = await s.lookup.find(ctx, req.keyId);
  checkImportOperation(key, "GetParametersForImport");
  const { hsmKeysSupported } = await s.worker.getStatus(ctx.deadline);
  const protectionLevel = hsmKeysSupported ? kmsResources.ProtectionLevel.HSM : kmsResources.ProtectionLevel.SOFTWARE;
  const tokenId = randomUUID();
  const wrapping = await s.worker.generateKeyMaterial(
    // Bound to the token id: ImportKeyMaterial presents this wrapping key under that version id.
    { keySpec: wrappingRsaSpec(req.wrappingKeySpec), protectionLevel, label: `import-${tokenId}`, keyVersionId: tokenId },
    ctx.deadline,
  );
  const token = randomBytes(TOKEN_BYTES).toString("base64url");
  const now = s.clock();
  const expireTime = new Date(now.getTime() + IMPORT_TOKEN_LIFETIME_MS);
  await auditedTransaction(s, ctx, async (work) => {
    await work.insertImportToken({
      tokenId,
      tokenHash: hashImportToken(token),
      keyId: key.keyId,
      wrappingAlgorithm: req.wrappingAlgorithm,
      wrappingKeySpec: req.wrappingKeySpec,
      protectionLevel,
      wrappedPrivateKey: Buffer.from(wrapping.wrappedMaterial),
      rootKeyId: wrapping.rootKeyId,
      creationTime: now,
      expireTime,
      usedAt: null,
    });
    return true;
  });
  const publicKey = createPublicKey({ key: Buffer.from(wrapping.publicKey), format: "der", type: "spki" }).export({ type: "spki", format: "pem" });
  return { keyId: key.keyId, importToken: token, publicKey: publicKey.toString(), tokenExpireTime: timestampFromDate(expireTime) };
};

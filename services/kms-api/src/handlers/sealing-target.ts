// What sealing caller bytes under a key's primary version needs (GenerateDataKey*, GenerateDataKeyPair*):
// the key found and checked for the operation, its primary version, the blob header and the AAD that binds
// header and encryption context, with the encryption counted.
import { buildAad, encodeHeader, validateEncryptionContext } from "@kms/ciphertext";
import { checkUsable } from "@kms/key-rules";
import type { CryptoOperation } from "@kms/key-rules";
import type { CallContext, Services } from "../context";
import { dryRunStop } from "../pipeline/dry-run";

export async function sealingTarget(s: Services, ctx: CallContext, keyId: string, encryptionContext: Record<string, string>, operation: CryptoOperation) {
  validateEncryptionContext(encryptionContext);
  const key = await s.lookup.find(ctx, keyId);
  checkUsable(key, operation);
  const version = await s.lookup.primaryVersion(ctx, key);
  const header = encodeHeader(version.keyVersionId);
  // Counted before the worker call: an imported key's version past its limit is refused here.
  await s.usage.take(key, version, ctx.dryRun);
  dryRunStop(ctx);
  return { key, version, header, aad: buildAad(header, encryptionContext) };
}

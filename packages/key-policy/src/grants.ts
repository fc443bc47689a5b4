// What a grant allows (docs/grants.md), as a pure function. A grant names operations from a fixed list
// (the key policy's action names without "kms:") and at most one encryption-context constraint.

/** The operations a grant may give. Not CreateGrant: a grant cannot pass itself on (simpler than AWS). */
export const GRANT_OPERATIONS: readonly string[] = [
  "Encrypt", "Decrypt", "ReEncryptFrom", "ReEncryptTo", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext",
  "GenerateDataKeyPair", "GenerateDataKeyPairWithoutPlaintext", "AsymmetricSign", "AsymmetricVerify",
  "AsymmetricEncrypt", "AsymmetricDecrypt", "GenerateMac", "VerifyMac", "GetPublicKey", "DescribeKey", "DeriveSharedSecret", "RetireGrant",
];

/** The operations that take an encryption context: the only ones a constrained grant may name. */
export const CONTEXT_OPERATIONS: readonly string[] = [
  "Encrypt", "Decrypt", "ReEncryptFrom", "ReEncryptTo", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext",
  "GenerateDataKeyPair", "GenerateDataKeyPairWithoutPlaintext",
];

export interface GrantTerms {
  operations: readonly string[];
  contextEquals: Readonly<Record<string, string>>;
  contextSubset: Readonly<Record<string, string>>;
}

const has = (o: object, k: string) => Object.prototype.hasOwnProperty.call(o, k);

/** The grant allows `operation` ("Encrypt") with this encryption context. */
export function grantAllows(grant: GrantTerms, operation: string, encryptionContext: Readonly<Record<string, string>>): boolean {
  if (!grant.operations.includes(operation)) return false;
  const equals = Object.entries(grant.contextEquals);
  const subset = Object.entries(grant.contextSubset);
  if (equals.length > 0) {
    if (Object.keys(encryptionContext).length !== equals.length) return false;
    return equals.every(([k, v]) => has(encryptionContext, k) && encryptionContext[k] === v);
  }
  return subset.every(([k, v]) => has(encryptionContext, k) && encryptionContext[k] === v);
}

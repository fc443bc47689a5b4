// Which key specs and protection levels the worker can handle. The kms-api decides what a key may be
// used for; the worker only refuses what it cannot do.
import { status } from "@grpc/grpc-js";
import { ErrorCode, invalidArgument, KmsError } from "@kms/errors";
import { kmsResources } from "@kms/proto";

const { KeySpec, ProtectionLevel } = kmsResources;

export function keySpecName(spec: kmsResources.KeySpec): string {
  return `KEY_SPEC_${KeySpec[spec] ?? String(spec)}`;
}

export function checkProtectionLevel(level: kmsResources.ProtectionLevel, field: string): void {
  if (level !== ProtectionLevel.SOFTWARE && level !== ProtectionLevel.HSM) {
    throw invalidArgument(field, "must be PROTECTION_LEVEL_SOFTWARE or PROTECTION_LEVEL_HSM");
  }
}

/** The software-root backend has no HSM to keep PROTECTION_LEVEL_HSM keys in. */
export function hsmUnsupported(): KmsError {
  return new KmsError(
    status.FAILED_PRECONDITION,
    ErrorCode.HsmUnsupported,
    "PROTECTION_LEVEL_HSM keys need a PKCS#11 module; this worker runs on the software root key",
  );
}

/** RFC 5649 output length: the input padded to 8 bytes, plus the 8-byte integrity block. */
export function kwpWrappedBytes(materialBytes: number): number {
  return Math.ceil(materialBytes / 8) * 8 + 8;
}

/** What the worker needs to know about a key spec: the kind of material and its size or curve. */
export type KeyFamily =
  | { kind: "aes"; bytes: 16 | 32 }
  | { kind: "hmac"; bytes: 32 | 48 | 64; hash: "sha256" | "sha384" | "sha512" }
  | { kind: "rsa"; bits: 2048 | 3072 | 4096 }
  | { kind: "ec"; curve: EcCurve }
  | { kind: "ed25519" };

export type EcCurve = "P-256" | "P-384" | "secp256k1";

const FAMILIES = new Map<kmsResources.KeySpec, KeyFamily>([
  [KeySpec.AES_256, { kind: "aes", bytes: 32 }],
  [KeySpec.AES_128, { kind: "aes", bytes: 16 }],
  // HMAC keys as long as the hash output (RFC 2104's recommended minimum is the output length).
  [KeySpec.HMAC_SHA256, { kind: "hmac", bytes: 32, hash: "sha256" }],
  [KeySpec.HMAC_SHA384, { kind: "hmac", bytes: 48, hash: "sha384" }],
  [KeySpec.HMAC_SHA512, { kind: "hmac", bytes: 64, hash: "sha512" }],
  [KeySpec.RSA_2048, { kind: "rsa", bits: 2048 }],
  [KeySpec.RSA_3072, { kind: "rsa", bits: 3072 }],
  [KeySpec.RSA_4096, { kind: "rsa", bits: 4096 }],
  [KeySpec.EC_P256, { kind: "ec", curve: "P-256" }],
  [KeySpec.EC_P384, { kind: "ec", curve: "P-384" }],
  [KeySpec.EC_P256K, { kind: "ec", curve: "secp256k1" }],
  [KeySpec.ED25519, { kind: "ed25519" }],
]);

/** The family of a spec the worker supports; anything else is INVALID_ARGUMENT naming `field`. */
export function keyFamily(spec: kmsResources.KeySpec, field: string): KeyFamily {
  const family = FAMILIES.get(spec);
  if (family === undefined) throw invalidArgument(field, `${keySpecName(spec)} is not supported by the HSM worker`);
  return family;
}

/** Largest wrapped PKCS#8 we accept: an RSA-4096 PrivateKeyInfo is about 2.4 KB. */
export const MAX_WRAPPED_PRIVATE_KEY_BYTES = 4096;

/**
 * Checks the RFC 5649 length for a family: exact for raw keys, a plausible range for PKCS#8. `overhead`
 * (format 2's header and tag) is added to the lengths the message names, which are the blob's.
 */
export function checkWrappedLength(family: KeyFamily, spec: kmsResources.KeySpec, length: number, field: string, overhead = 0): void {
  if (family.kind === "aes" || family.kind === "hmac") {
    const expected = kwpWrappedBytes(family.bytes);
    if (length !== expected) throw invalidArgument(field, `must be ${expected + overhead} bytes for ${keySpecName(spec)}`);
    return;
  }
  if (length < 16 || length % 8 !== 0 || length > MAX_WRAPPED_PRIVATE_KEY_BYTES) {
    throw invalidArgument(field, `is not a plausible wrapped private key for ${keySpecName(spec)} (${length + overhead} bytes)`);
  }
}

/** INVALID_ARGUMENT for a key whose spec does not allow the operation (kms-api checks usage first). */
export function wrongKeyFamily(field: string, spec: kmsResources.KeySpec, operation: string): KmsError {
  return invalidArgument(field, `${keySpecName(spec)} cannot be used for ${operation}`);
}

// Which key specs and protection levels the worker can handle, read from the capability table in
// @kms/key-rules. The kms-api decides what a key may be used for; the worker only refuses what it cannot do.
import { invalidArgument } from "@kms/errors";
import type { KmsError } from "@kms/errors";
import { KEY_SPECS, noHsmModule } from "@kms/key-rules";
import type { KeyFamily } from "@kms/key-rules";
import { kmsResources } from "@kms/proto";

export type { EcCurve, KeyFamily } from "@kms/key-rules";

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
  return noHsmModule("this worker");
}

/** RFC 5649 output length: the input padded to 8 bytes, plus the 8-byte integrity block. */
export function kwpWrappedBytes(materialBytes: number): number {
  return Math.ceil(materialBytes / 8) * 8 + 8;
}

/** The family of a spec the worker supports; anything else is INVALID_ARGUMENT naming `field`. */
export function keyFamily(spec: kmsResources.KeySpec, field: string): KeyFamily {
  const family = KEY_SPECS.get(spec)?.family;
  if (family === undefined) throw invalidArgument(field, `${keySpecName(spec)} is not supported by the HSM worker`);
  return family;
}

/** ML-DSA material is the FIPS 204 keygen seed ξ. */
export const ML_DSA_SEED_BYTES = 32;

/** Largest wrapped PKCS#8 we accept: an RSA-4096 PrivateKeyInfo is about 2.4 KB. */
export const MAX_WRAPPED_PRIVATE_KEY_BYTES = 4096;

/**
 * Checks the RFC 5649 length for a family: exact for raw keys, a plausible range for PKCS#8. `overhead`
 * (format 2's header and tag) is added to the lengths the message names, which are the blob's.
 */
export function checkWrappedLength(family: KeyFamily, spec: kmsResources.KeySpec, length: number, field: string, overhead = 0): void {
  if (family.kind === "aes" || family.kind === "hmac" || family.kind === "ml-dsa") {
    const expected = kwpWrappedBytes(family.kind === "ml-dsa" ? ML_DSA_SEED_BYTES : family.bytes);
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

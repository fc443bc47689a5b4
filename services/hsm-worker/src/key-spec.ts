// Which key specs and protection levels the worker can handle. The kms-api decides what a key may be
// used for; the worker only refuses what it cannot do.
import { status } from "@grpc/grpc-js";
import { ErrorCode, invalidArgument, KmsError } from "@kms/errors";
import { kmsResources } from "@kms/proto";

const { KeySpec, ProtectionLevel } = kmsResources;

/** Key length in bytes of an AES spec; anything else is refused. */
export function aesKeyBytes(spec: kmsResources.KeySpec, field: string): 16 | 32 {
  if (spec === KeySpec.AES_256) return 32;
  if (spec === KeySpec.AES_128) return 16;
  throw invalidArgument(field, `${keySpecName(spec)} is not supported by the HSM worker (AES_256 and AES_128 are)`);
}

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

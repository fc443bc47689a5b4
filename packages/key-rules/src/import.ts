// Key import (ORIGIN_EXTERNAL keys) as pure rules: which state allows which import operation, the state
// each leads to, and the limits of tokens and expiry times.
//
//   PENDING_IMPORT → ENABLED                 (ImportKeyMaterial)
//   ENABLED | DISABLED → same state          (ImportKeyMaterial of the same material: a new expiry time)
//   ENABLED | DISABLED → PENDING_IMPORT      (DeleteKeyMaterial, or the material's expiry)
//   PENDING_DELETION: no import operation; expiry removes the material and the state stays
import { ErrorCode, KmsError, invalidArgument } from "@kms/errors";
import { kmsResources } from "@kms/proto";
import { isKnown, keyStateName } from "./names";

const { KeyState, Origin, WrappingKeySpec } = kmsResources;
type KeyState = kmsResources.KeyState;

export type ImportOperation = "GetParametersForImport" | "ImportKeyMaterial" | "DeleteKeyMaterial";

/** How long an import token is good for. */
export const IMPORT_TOKEN_LIFETIME_MS = 24 * 60 * 60 * 1000;

export interface ImportKey {
  keyId: string;
  keyState: KeyState;
  origin: number;
}

/**
 * FAILED_PRECONDITION unless the key takes this import operation: an ORIGIN_EXTERNAL key that is not
 * pending deletion (kms-error-code Rejected.KeyUsage for a key the KMS generated).
 */
export function checkImportOperation(key: ImportKey, operation: ImportOperation): void {
  if (key.origin !== Origin.EXTERNAL) {
    throw new KmsError(ErrorCode.KeyUsage, `${operation} is only for ORIGIN_EXTERNAL keys; key ${key.keyId} is ORIGIN_KMS`);
  }
  if (key.keyState === KeyState.PENDING_DELETION) {
    throw new KmsError(
      ErrorCode.PendingDeletion,
      `${operation} is not allowed: key ${key.keyId} is ${keyStateName(key.keyState)}`,
    );
  }
}

/** The state after an import: a key waiting for material is enabled; otherwise the state stays. */
export function stateAfterImport(state: KeyState): KeyState {
  return state === KeyState.PENDING_IMPORT ? KeyState.ENABLED : state;
}

/** The state after the material is deleted or expires: pending import, unless pending deletion. */
export function stateAfterMaterialRemoved(state: KeyState): KeyState {
  return state === KeyState.PENDING_DELETION ? KeyState.PENDING_DELETION : KeyState.PENDING_IMPORT;
}

/** GetParametersForImport's choices; INVALID_ARGUMENT naming the field for a missing or unknown value. */
export function checkWrappingChoice(algorithm: number, keySpec: number): void {
  if (!isKnown(kmsResources.WrappingAlgorithmSchema, algorithm)) {
    throw invalidArgument("wrapping_algorithm", "must be RSAES_OAEP_SHA_256, RSAES_OAEP_SHA_1 or RSA_AES_KEY_WRAP_SHA_256");
  }
  if (!isKnown(kmsResources.WrappingKeySpecSchema, keySpec)) {
    throw invalidArgument("wrapping_key_spec", "must be RSA_2048, RSA_3072 or RSA_4096");
  }
}

/** The RSA key spec of a wrapping key spec (the worker makes it like any RSA key). */
export function wrappingRsaSpec(keySpec: kmsResources.WrappingKeySpec): kmsResources.KeySpec {
  switch (keySpec) {
    case WrappingKeySpec.RSA_2048:
      return kmsResources.KeySpec.RSA_2048;
    case WrappingKeySpec.RSA_3072:
      return kmsResources.KeySpec.RSA_3072;
    case WrappingKeySpec.RSA_4096:
      return kmsResources.KeySpec.RSA_4096;
    default:
      throw invalidArgument("wrapping_key_spec", "must be RSA_2048, RSA_3072 or RSA_4096");
  }
}

/** key_material_expire_time, when given, must lie in the future. */
export function checkMaterialExpireTime(expireTime: Date | undefined, now: Date): void {
  if (expireTime !== undefined && expireTime.getTime() <= now.getTime()) {
    throw invalidArgument("key_material_expire_time", `must be in the future, got ${expireTime.toISOString()}`);
  }
}

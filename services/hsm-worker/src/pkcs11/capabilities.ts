// What the PKCS#11 module can do, in one object: every place that works around a module's limits asks the
// profile instead of assuming SoftHSM (as Cosmian KMS's hsm_capabilities.rs). The profile is chosen from
// the module's C_GetInfo (manufacturer, library description), or named by KMS_PKCS11_PROFILE.
import { kmsResources } from "@kms/proto";

export type ProfileName = "softhsm2" | "native";
/** KMS_PKCS11_PROFILE: "auto" chooses from the module's C_GetInfo. */
export type ProfileChoice = ProfileName | "auto";

export interface ModuleProfile {
  readonly name: ProfileName;
  /**
   * Specs the module cannot keep at PROTECTION_LEVEL_HSM although it has HSM keys: generating or importing
   * them at that level is refused (HsmUnsupported), and GetStatus reports them so kms-api refuses first.
   */
  readonly hsmUnsupportedSpecs: readonly kmsResources.KeySpec[];
  /**
   * RSAES-OAEP with SHA-256: "native" is CKM_RSA_PKCS_OAEP in the module; "raw-rsa" is CKM_RSA_X_509 in the
   * module and constant-time OAEP decoding in the worker (asymmetric/oaep.ts), for modules without it.
   */
  readonly oaepSha256: "native" | "raw-rsa";
  /**
   * Format 1 HSM-level Ed25519 rows (a wrapped seed, from releases that kept such keys): "seed-object"
   * unwraps the seed into worker memory and makes a sensitive session object of it; "refused" rejects them.
   */
  readonly legacyEd25519: "seed-object" | "refused";
}

/**
 * ML-DSA: PKCS#11 2.40 (SoftHSM 2.6.1, pkcs11js) has no ML-DSA mechanism, so both profiles refuse it at
 * PROTECTION_LEVEL_HSM (SOFTWARE keys it is). A profile for a PKCS#11 3.2 HSM with CKM_ML_DSA would leave
 * these out, once the worker generates, wraps and signs ML-DSA keys in a module.
 */
const NO_ML_DSA = [kmsResources.KeySpec.ML_DSA_44, kmsResources.KeySpec.ML_DSA_65, kmsResources.KeySpec.ML_DSA_87];

/**
 * SoftHSM 2.6: CKM_RSA_PKCS_OAEP with SHA-1 only; it can neither wrap nor unwrap EdDSA private keys
 * (CKR_KEY_NOT_WRAPPABLE, CKR_FUNCTION_FAILED), so an HSM-level Ed25519 key could not stay in the HSM:
 * Ed25519 keys are SOFTWARE keys there (their format 1 rows keep working through the seed path).
 */
export const SOFTHSM2: ModuleProfile = {
  name: "softhsm2",
  hsmUnsupportedSpecs: [kmsResources.KeySpec.ED25519, ...NO_ML_DSA],
  oaepSha256: "raw-rsa",
  legacyEd25519: "seed-object",
};

/**
 * A module with the PKCS#11 2.40 mechanisms natively (HSMs such as Luna or CloudHSM): OAEP-SHA-256 in the
 * module, which may refuse raw RSA. HSM-level Ed25519 stays refused until the worker has a generation and
 * wrap path for EdDSA keys inside the HSM.
 */
export const NATIVE: ModuleProfile = {
  name: "native",
  hsmUnsupportedSpecs: [kmsResources.KeySpec.ED25519, ...NO_ML_DSA],
  oaepSha256: "native",
  legacyEd25519: "seed-object",
};

const PROFILES: Record<ProfileName, ModuleProfile> = { softhsm2: SOFTHSM2, native: NATIVE };

/** What C_GetInfo says about the module (pkcs11js ModuleInfo). */
export interface ModuleInfo {
  manufacturerID: string;
  libraryDescription: string;
}

/** The profile named by `choice`, or for "auto" the one the module's info points to. */
export function chooseProfile(info: ModuleInfo, choice: ProfileChoice = "auto"): ModuleProfile {
  if (choice !== "auto") return PROFILES[choice];
  const who = `${info.manufacturerID} ${info.libraryDescription}`;
  return /softhsm/i.test(who) ? SOFTHSM2 : NATIVE;
}

// The key-spec capability table, pure data (in the manner of Vault transit's KeyType.*Supported()): for
// each spec its family (kind of material, size or curve), the usages and signing algorithms it allows;
// the OAEP hashes; the size limits of messages and random bytes; and the texts of an HSM that cannot keep
// a key. kms-api validates requests with it (index.ts), and the hsm-worker reads the same table, so the
// two can never disagree about what a spec is.
import { ErrorCode, KmsError } from "@kms/errors";
import { kmsResources } from "@kms/proto";
import { keySpecName } from "./names";

const { KeySpec, KeyUsage, SigningAlgorithm, EncryptionAlgorithm, KeyAgreementAlgorithm } = kmsResources;

export type EcCurve = "P-256" | "P-384" | "secp256k1";

/** The kind of material a spec is and its size or curve (what the worker generates and checks). */
export type KeyFamily =
  | { kind: "aes"; bytes: 16 | 32 }
  | { kind: "hmac"; bytes: 32 | 48 | 64; hash: "sha256" | "sha384" | "sha512" }
  | { kind: "rsa"; bits: 2048 | 3072 | 4096 }
  | { kind: "ec"; curve: EcCurve }
  | { kind: "ed25519" }
  // FIPS 204 parameter sets; the material is the 32-byte keygen seed ξ.
  | { kind: "ml-dsa"; level: 44 | 65 | 87 };

export interface KeySpecCapabilities {
  family: KeyFamily;
  usages: readonly kmsResources.KeyUsage[];
  signingAlgorithms: readonly kmsResources.SigningAlgorithm[];
  /** GenerateDataKeyPair can make pairs of this spec (PKCS#8 private key, SPKI public key). */
  dataKeyPair?: true;
  /** The key agreement algorithms of the spec's KEY_AGREEMENT keys (none: no such usage). */
  keyAgreementAlgorithms?: readonly kmsResources.KeyAgreementAlgorithm[];
}

const RSA_SIGNING = [SigningAlgorithm.RSA_PSS_SHA_256, SigningAlgorithm.RSA_PKCS1_SHA_256];
const ENCRYPT = [KeyUsage.ENCRYPT_DECRYPT];
const SIGN = [KeyUsage.SIGN_VERIFY];
const MAC = [KeyUsage.GENERATE_VERIFY_MAC];
// AWS's curves for ECDH (NIST P-256 and P-384; no secp256k1, no ECC_NIST_P521 here).
const SIGN_OR_AGREE = [KeyUsage.SIGN_VERIFY, KeyUsage.KEY_AGREEMENT];
const ECDH = [KeyAgreementAlgorithm.ECDH];

export const KEY_SPECS: ReadonlyMap<kmsResources.KeySpec, KeySpecCapabilities> = new Map<kmsResources.KeySpec, KeySpecCapabilities>([
  [KeySpec.AES_256, { family: { kind: "aes", bytes: 32 }, usages: ENCRYPT, signingAlgorithms: [] }],
  [KeySpec.AES_128, { family: { kind: "aes", bytes: 16 }, usages: ENCRYPT, signingAlgorithms: [] }],
  [KeySpec.RSA_2048, { family: { kind: "rsa", bits: 2048 }, usages: [KeyUsage.SIGN_VERIFY, KeyUsage.ENCRYPT_DECRYPT], signingAlgorithms: RSA_SIGNING, dataKeyPair: true }],
  [KeySpec.RSA_3072, { family: { kind: "rsa", bits: 3072 }, usages: [KeyUsage.SIGN_VERIFY, KeyUsage.ENCRYPT_DECRYPT], signingAlgorithms: RSA_SIGNING, dataKeyPair: true }],
  [KeySpec.RSA_4096, { family: { kind: "rsa", bits: 4096 }, usages: [KeyUsage.SIGN_VERIFY, KeyUsage.ENCRYPT_DECRYPT], signingAlgorithms: RSA_SIGNING, dataKeyPair: true }],
  [KeySpec.EC_P256, { family: { kind: "ec", curve: "P-256" }, usages: SIGN_OR_AGREE, signingAlgorithms: [SigningAlgorithm.ECDSA_SHA_256], dataKeyPair: true, keyAgreementAlgorithms: ECDH }],
  [KeySpec.EC_P384, { family: { kind: "ec", curve: "P-384" }, usages: SIGN_OR_AGREE, signingAlgorithms: [SigningAlgorithm.ECDSA_SHA_384], dataKeyPair: true, keyAgreementAlgorithms: ECDH }],
  [KeySpec.EC_P256K, { family: { kind: "ec", curve: "secp256k1" }, usages: SIGN, signingAlgorithms: [SigningAlgorithm.ECDSA_SHA_256], dataKeyPair: true }],
  [KeySpec.ED25519, { family: { kind: "ed25519" }, usages: SIGN, signingAlgorithms: [SigningAlgorithm.ED25519] }],
  [KeySpec.ML_DSA_44, { family: { kind: "ml-dsa", level: 44 }, usages: SIGN, signingAlgorithms: [SigningAlgorithm.ML_DSA_SHAKE_256] }],
  [KeySpec.ML_DSA_65, { family: { kind: "ml-dsa", level: 65 }, usages: SIGN, signingAlgorithms: [SigningAlgorithm.ML_DSA_SHAKE_256] }],
  [KeySpec.ML_DSA_87, { family: { kind: "ml-dsa", level: 87 }, usages: SIGN, signingAlgorithms: [SigningAlgorithm.ML_DSA_SHAKE_256] }],
  // HMAC keys as long as the hash output (RFC 2104's recommended minimum is the output length).
  [KeySpec.HMAC_SHA256, { family: { kind: "hmac", bytes: 32, hash: "sha256" }, usages: MAC, signingAlgorithms: [] }],
  [KeySpec.HMAC_SHA384, { family: { kind: "hmac", bytes: 48, hash: "sha384" }, usages: MAC, signingAlgorithms: [] }],
  [KeySpec.HMAC_SHA512, { family: { kind: "hmac", bytes: 64, hash: "sha512" }, usages: MAC, signingAlgorithms: [] }],
]);

/** The specs of one family kind, in table order. */
export function specsOfKind(...kinds: KeyFamily["kind"][]): kmsResources.KeySpec[] {
  return [...KEY_SPECS].filter(([, c]) => kinds.includes(c.family.kind)).map(([spec]) => spec);
}

/** RSAES-OAEP algorithms and their hash. */
export const OAEP_HASHES: Partial<Record<kmsResources.EncryptionAlgorithm, { name: "sha1" | "sha256"; bytes: 20 | 32 }>> = {
  [EncryptionAlgorithm.RSAES_OAEP_SHA_256]: { name: "sha256", bytes: 32 },
  [EncryptionAlgorithm.RSAES_OAEP_SHA_1]: { name: "sha1", bytes: 20 },
};

/** A message to sign (Ed25519, ML-DSA) or MAC: 1 to this many bytes. */
export const MAX_MESSAGE_BYTES = 4096;
/** ML-DSA's external μ (FIPS 204 Algorithm 7, line 6): exactly this many bytes. */
export const EXTERNAL_MU_BYTES = 64;
/** GenerateRandom and data keys: 1 to this many bytes. */
export const MAX_RANDOM_BYTES = 1024;

/** A worker without a PKCS#11 module cannot keep PROTECTION_LEVEL_HSM keys; `worker` names who refuses. */
export function noHsmModule(worker: "this worker" | "the HSM worker"): KmsError {
  return new KmsError(ErrorCode.HsmUnsupported, `PROTECTION_LEVEL_HSM keys need a PKCS#11 module; ${worker} runs on the software root key`);
}

/** Why no PKCS#11 module here can hold ML-DSA keys (the module profiles refuse them). */
const NO_ML_DSA = "the PKCS#11 module has no ML-DSA (SoftHSM 2.6.1 and pkcs11js implement PKCS#11 2.40, which defines no ML-DSA mechanism)";

/** kms-api's refusal: the worker reported that its module cannot keep `spec` at PROTECTION_LEVEL_HSM. */
export function hsmCannotHold(spec: kmsResources.KeySpec): KmsError {
  if (KEY_SPECS.get(spec)?.family.kind === "ml-dsa") {
    return new KmsError(ErrorCode.HsmUnsupported, `${keySpecName(spec)} keys cannot be PROTECTION_LEVEL_HSM: ${NO_ML_DSA}; use PROTECTION_LEVEL_SOFTWARE`);
  }
  return new KmsError(
    ErrorCode.HsmUnsupported,
    `${keySpecName(spec)} keys cannot be PROTECTION_LEVEL_HSM: the PKCS#11 module cannot wrap their private keys; use PROTECTION_LEVEL_SOFTWARE`,
  );
}

/** The worker's refusal, when asked anyway (an import, or a caller at its socket). */
export function moduleCannotHold(spec: kmsResources.KeySpec): KmsError {
  if (KEY_SPECS.get(spec)?.family.kind === "ml-dsa") {
    return new KmsError(ErrorCode.HsmUnsupported, `${keySpecName(spec)} cannot be PROTECTION_LEVEL_HSM here: ${NO_ML_DSA}; use PROTECTION_LEVEL_SOFTWARE`);
  }
  return new KmsError(
    ErrorCode.HsmUnsupported,
    `${keySpecName(spec)} cannot be PROTECTION_LEVEL_HSM here: the PKCS#11 module cannot wrap its private keys, so they could not stay in the HSM; use PROTECTION_LEVEL_SOFTWARE`,
  );
}

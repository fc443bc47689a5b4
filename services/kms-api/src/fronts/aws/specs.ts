// AWS's names for key specs, usages, states, origins and algorithms, and the kms.v1 values they stand for.
// A name AWS has and this service does not answers UnsupportedOperationException naming it.
import { invalidArgument } from "@kms/errors";
import { kmsResources } from "@kms/proto";
import { unsupported } from "./errors";

const { KeySpec, KeyUsage, KeyState, Origin, SigningAlgorithm, EncryptionAlgorithm, WrappingAlgorithm, WrappingKeySpec } = kmsResources;

/** AWS KeySpec → kms.v1. AES-128 keys (made through kms.v1) show as SYMMETRIC_DEFAULT too: both are AES-GCM. */
const KEY_SPECS: Record<string, kmsResources.KeySpec> = {
  SYMMETRIC_DEFAULT: KeySpec.AES_256,
  RSA_2048: KeySpec.RSA_2048,
  RSA_3072: KeySpec.RSA_3072,
  RSA_4096: KeySpec.RSA_4096,
  ECC_NIST_P256: KeySpec.EC_P256,
  ECC_NIST_P384: KeySpec.EC_P384,
  ECC_SECG_P256K1: KeySpec.EC_P256K,
  ECC_NIST_EDWARDS25519: KeySpec.ED25519,
  HMAC_256: KeySpec.HMAC_SHA256,
  HMAC_384: KeySpec.HMAC_SHA384,
  HMAC_512: KeySpec.HMAC_SHA512,
  ML_DSA_44: KeySpec.ML_DSA_44,
  ML_DSA_65: KeySpec.ML_DSA_65,
  ML_DSA_87: KeySpec.ML_DSA_87,
};
/** AWS key specs with no equivalent here. */
const UNSUPPORTED_KEY_SPECS = ["ECC_NIST_P521", "HMAC_224", "SM2", "ML_KEM_512", "ML_KEM_768", "ML_KEM_1024"];

export function keySpecFromAws(name: string, field = "KeySpec"): kmsResources.KeySpec {
  const spec = KEY_SPECS[name];
  if (spec !== undefined) return spec;
  if (UNSUPPORTED_KEY_SPECS.includes(name)) throw unsupported(`${field} ${name}`);
  throw invalidArgument(field, `unknown key spec ${JSON.stringify(name)}`);
}

export function keySpecToAws(spec: kmsResources.KeySpec): string {
  if (spec === KeySpec.AES_128) return "SYMMETRIC_DEFAULT";
  return Object.entries(KEY_SPECS).find(([, v]) => v === spec)?.[0] ?? "SYMMETRIC_DEFAULT";
}

const KEY_USAGES: Record<string, kmsResources.KeyUsage> = {
  ENCRYPT_DECRYPT: KeyUsage.ENCRYPT_DECRYPT,
  SIGN_VERIFY: KeyUsage.SIGN_VERIFY,
  GENERATE_VERIFY_MAC: KeyUsage.GENERATE_VERIFY_MAC,
  KEY_AGREEMENT: KeyUsage.KEY_AGREEMENT,
};
const UNSUPPORTED_KEY_USAGES = ["KEY_ENCAPSULATION"];

export function keyUsageFromAws(name: string): kmsResources.KeyUsage {
  const usage = KEY_USAGES[name];
  if (usage !== undefined) return usage;
  if (UNSUPPORTED_KEY_USAGES.includes(name)) throw unsupported(`KeyUsage ${name}`);
  throw invalidArgument("KeyUsage", `unknown key usage ${JSON.stringify(name)}`);
}

export function keyUsageToAws(usage: kmsResources.KeyUsage): string {
  return Object.entries(KEY_USAGES).find(([, v]) => v === usage)?.[0] ?? "ENCRYPT_DECRYPT";
}

export function originFromAws(name: string): kmsResources.Origin {
  if (name === "AWS_KMS") return Origin.KMS;
  if (name === "EXTERNAL") return Origin.EXTERNAL;
  if (name === "AWS_CLOUDHSM" || name === "EXTERNAL_KEY_STORE") throw unsupported(`Origin ${name}`);
  throw invalidArgument("Origin", `unknown origin ${JSON.stringify(name)}`);
}

export function originToAws(origin: kmsResources.Origin): string {
  return origin === Origin.EXTERNAL ? "EXTERNAL" : "AWS_KMS";
}

export function keyStateToAws(state: kmsResources.KeyState): string {
  switch (state) {
    case KeyState.ENABLED:
      return "Enabled";
    case KeyState.PENDING_DELETION:
      return "PendingDeletion";
    case KeyState.PENDING_IMPORT:
      return "PendingImport";
    default:
      return "Disabled";
  }
}

/** AWS SigningAlgorithmSpec → kms.v1 (RSA-PSS here uses a 32-byte salt, as AWS's RSASSA_PSS_SHA_256). */
const SIGNING: Record<string, kmsResources.SigningAlgorithm> = {
  RSASSA_PSS_SHA_256: SigningAlgorithm.RSA_PSS_SHA_256,
  RSASSA_PKCS1_V1_5_SHA_256: SigningAlgorithm.RSA_PKCS1_SHA_256,
  ECDSA_SHA_256: SigningAlgorithm.ECDSA_SHA_256,
  ECDSA_SHA_384: SigningAlgorithm.ECDSA_SHA_384,
  ED25519_SHA_512: SigningAlgorithm.ED25519,
  ML_DSA_SHAKE_256: SigningAlgorithm.ML_DSA_SHAKE_256,
};
const UNSUPPORTED_SIGNING = [
  "RSASSA_PSS_SHA_384", "RSASSA_PSS_SHA_512", "RSASSA_PKCS1_V1_5_SHA_384", "RSASSA_PKCS1_V1_5_SHA_512",
  "ECDSA_SHA_512", "ED25519_PH_SHA_512", "SM2DSA",
];

export function signingAlgorithmFromAws(name: string): kmsResources.SigningAlgorithm {
  const algorithm = SIGNING[name];
  if (algorithm !== undefined) return algorithm;
  if (UNSUPPORTED_SIGNING.includes(name)) throw unsupported(`SigningAlgorithm ${name}`);
  throw invalidArgument("SigningAlgorithm", `unknown signing algorithm ${JSON.stringify(name)}`);
}

export function signingAlgorithmsOf(spec: kmsResources.KeySpec): string[] {
  switch (spec) {
    case KeySpec.RSA_2048:
    case KeySpec.RSA_3072:
    case KeySpec.RSA_4096:
      return ["RSASSA_PSS_SHA_256", "RSASSA_PKCS1_V1_5_SHA_256"];
    case KeySpec.EC_P256:
    case KeySpec.EC_P256K:
      return ["ECDSA_SHA_256"];
    case KeySpec.EC_P384:
      return ["ECDSA_SHA_384"];
    case KeySpec.ED25519:
      return ["ED25519_SHA_512"];
    case KeySpec.ML_DSA_44:
    case KeySpec.ML_DSA_65:
    case KeySpec.ML_DSA_87:
      return ["ML_DSA_SHAKE_256"];
    default:
      return [];
  }
}

/** AWS EncryptionAlgorithmSpec: SYMMETRIC_DEFAULT (kms.v1 Encrypt) or RSA-OAEP (AsymmetricEncrypt). */
export const ENCRYPTION_ALGORITHMS = ["SYMMETRIC_DEFAULT", "RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256", "SM2PKE"] as const;
export type AwsEncryptionAlgorithm = (typeof ENCRYPTION_ALGORITHMS)[number];

export function rsaAlgorithmFromAws(name: AwsEncryptionAlgorithm): kmsResources.EncryptionAlgorithm {
  if (name === "RSAES_OAEP_SHA_1") return EncryptionAlgorithm.RSAES_OAEP_SHA_1;
  if (name === "RSAES_OAEP_SHA_256") return EncryptionAlgorithm.RSAES_OAEP_SHA_256;
  throw unsupported(`EncryptionAlgorithm ${name}`);
}

/** KeyAgreementAlgorithms of a KEY_AGREEMENT key (ECDH, AWS's only one); none for other usages. */
export function keyAgreementAlgorithmsOf(usage: kmsResources.KeyUsage): string[] {
  return usage === KeyUsage.KEY_AGREEMENT ? ["ECDH"] : [];
}

export function encryptionAlgorithmsOf(spec: kmsResources.KeySpec, usage: kmsResources.KeyUsage): string[] {
  if (spec === KeySpec.AES_256 || spec === KeySpec.AES_128) return ["SYMMETRIC_DEFAULT"];
  if (usage === KeyUsage.ENCRYPT_DECRYPT) return ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"];
  return [];
}

/** The one MAC algorithm each HMAC key spec has. */
const MAC_OF_SPEC: Partial<Record<kmsResources.KeySpec, string>> = {
  [KeySpec.HMAC_SHA256]: "HMAC_SHA_256",
  [KeySpec.HMAC_SHA384]: "HMAC_SHA_384",
  [KeySpec.HMAC_SHA512]: "HMAC_SHA_512",
};
export const MAC_ALGORITHMS = ["HMAC_SHA_224", "HMAC_SHA_256", "HMAC_SHA_384", "HMAC_SHA_512"] as const;

export function macAlgorithmsOf(spec: kmsResources.KeySpec): string[] {
  const mac = MAC_OF_SPEC[spec];
  return mac === undefined ? [] : [mac];
}

const WRAPPING_ALGORITHMS: Record<string, kmsResources.WrappingAlgorithm> = {
  RSAES_OAEP_SHA_1: WrappingAlgorithm.RSAES_OAEP_SHA_1,
  RSAES_OAEP_SHA_256: WrappingAlgorithm.RSAES_OAEP_SHA_256,
  RSA_AES_KEY_WRAP_SHA_256: WrappingAlgorithm.RSA_AES_KEY_WRAP_SHA_256,
};

export function wrappingAlgorithmFromAws(name: string): kmsResources.WrappingAlgorithm {
  const algorithm = WRAPPING_ALGORITHMS[name];
  if (algorithm !== undefined) return algorithm;
  if (["RSAES_PKCS1_V1_5", "RSA_AES_KEY_WRAP_SHA_1", "SM2PKE"].includes(name)) throw unsupported(`WrappingAlgorithm ${name}`);
  throw invalidArgument("WrappingAlgorithm", `unknown wrapping algorithm ${JSON.stringify(name)}`);
}

export function wrappingKeySpecFromAws(name: string): kmsResources.WrappingKeySpec {
  if (name === "RSA_2048") return WrappingKeySpec.RSA_2048;
  if (name === "RSA_3072") return WrappingKeySpec.RSA_3072;
  if (name === "RSA_4096") return WrappingKeySpec.RSA_4096;
  if (name === "SM2") throw unsupported("WrappingKeySpec SM2");
  throw invalidArgument("WrappingKeySpec", `unknown wrapping key spec ${JSON.stringify(name)}`);
}

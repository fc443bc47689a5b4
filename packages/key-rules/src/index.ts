// Key rules as pure functions, with no I/O: which spec allows which usage, which state allows which
// operation, and the spec's size limits. kms-api calls these; they are tested on their own.
import { ErrorCode, KmsError, invalidArgument } from "@kms/errors";
import { kmsResources } from "@kms/proto";

const { KeySpec, KeyUsage, KeyState, ProtectionLevel, Origin, DataKeySpec } = kmsResources;
type KeySpec = kmsResources.KeySpec;
type KeyUsage = kmsResources.KeyUsage;
type KeyState = kmsResources.KeyState;
type ProtectionLevel = kmsResources.ProtectionLevel;
type Origin = kmsResources.Origin;
type DataKeySpec = kmsResources.DataKeySpec;

import { enumName, isKnown, keySpecName, keyStateName, keyUsageName } from "./names";
import type { EnumSchema } from "./names";
export { enumName, keySpecName, keyStateName, keyUsageName, protectionLevelName } from "./names";

export function requireKnownEnum(schema: EnumSchema, value: number, field: string): void {
  if (!isKnown(schema, value)) throw invalidArgument(field, `unknown value ${value}`);
}

import { EXTERNAL_MU_BYTES, KEY_SPECS, MAX_MESSAGE_BYTES, MAX_RANDOM_BYTES, OAEP_HASHES, specsOfKind } from "./key-specs";
export * from "./key-specs";
export * from "./data-key-pairs";

const AES = specsOfKind("aes");
const RSA = specsOfKind("rsa");
const EC = specsOfKind("ec", "ed25519");
const HMAC = specsOfKind("hmac");
const ML_DSA = specsOfKind("ml-dsa");
const KEY_AGREEMENT_SPECS = [...KEY_SPECS].filter(([, c]) => c.keyAgreementAlgorithms !== undefined).map(([spec]) => spec);

/** The usages a key spec allows (the spec's "valid pairs"). */
export function allowedUsages(spec: KeySpec): KeyUsage[] {
  return [...(KEY_SPECS.get(spec)?.usages ?? [])];
}

/** Key specs this release can create. */
export const CREATABLE_SPECS: readonly KeySpec[] = [...AES, ...RSA, ...EC, ...HMAC, ...ML_DSA];

export interface KeyChoice {
  keySpec: KeySpec;
  keyUsage: KeyUsage;
  protectionLevel: ProtectionLevel;
  origin: Origin;
}

/**
 * Applies CreateKey's defaults and checks the choice. `hsmAvailable` decides the default protection
 * level. Throws INVALID_ARGUMENT naming the field (both values for a bad pairing).
 */
export function resolveKeyChoice(
  request: { keySpec: number; keyUsage: number; protectionLevel: number; origin: number },
  hsmAvailable: boolean,
): KeyChoice {
  const keyUsage = request.keyUsage === KeyUsage.UNSPECIFIED ? KeyUsage.ENCRYPT_DECRYPT : request.keyUsage;
  requireKnownEnum(kmsResources.KeyUsageSchema, keyUsage, "key_usage");
  const keySpec =
    request.keySpec !== KeySpec.UNSPECIFIED
      ? request.keySpec
      : keyUsage === KeyUsage.ENCRYPT_DECRYPT
        ? KeySpec.AES_256
        : undefined;
  if (keySpec === undefined) throw invalidArgument("key_spec", `is required for ${keyUsageName(keyUsage)}`);
  requireKnownEnum(kmsResources.KeySpecSchema, keySpec, "key_spec");
  const protectionLevel =
    request.protectionLevel === ProtectionLevel.UNSPECIFIED
      ? hsmAvailable
        ? ProtectionLevel.HSM
        : ProtectionLevel.SOFTWARE
      : request.protectionLevel;
  requireKnownEnum(kmsResources.ProtectionLevelSchema, protectionLevel, "protection_level");
  const origin = request.origin === Origin.UNSPECIFIED ? Origin.KMS : request.origin;
  requireKnownEnum(kmsResources.OriginSchema, origin, "origin");

  if (!allowedUsages(keySpec).includes(keyUsage)) {
    throw invalidArgument("key_spec", `${keySpecName(keySpec)} cannot be used with key_usage ${keyUsageName(keyUsage)}`);
  }
  if (!CREATABLE_SPECS.includes(keySpec)) {
    throw new KmsError(ErrorCode.Unimplemented, `key_spec: ${keySpecName(keySpec)} is not implemented yet`);
  }
  if (origin === Origin.EXTERNAL && ML_DSA.includes(keySpec)) {
    throw new KmsError(ErrorCode.Unimplemented, `origin: importing ${keySpecName(keySpec)} material is not implemented yet`);
  }
  return { keySpec, keyUsage, protectionLevel, origin };
}

/** Operations that use key material, with the usage and key family each needs. */
const OPERATION_NEEDS = {
  Encrypt: { usage: KeyUsage.ENCRYPT_DECRYPT, specs: AES },
  Decrypt: { usage: KeyUsage.ENCRYPT_DECRYPT, specs: AES },
  ReEncrypt: { usage: KeyUsage.ENCRYPT_DECRYPT, specs: AES },
  GenerateDataKey: { usage: KeyUsage.ENCRYPT_DECRYPT, specs: AES },
  GenerateDataKeyWithoutPlaintext: { usage: KeyUsage.ENCRYPT_DECRYPT, specs: AES },
  GenerateDataKeyPair: { usage: KeyUsage.ENCRYPT_DECRYPT, specs: AES },
  GenerateDataKeyPairWithoutPlaintext: { usage: KeyUsage.ENCRYPT_DECRYPT, specs: AES },
  AsymmetricSign: { usage: KeyUsage.SIGN_VERIFY, specs: [...RSA, ...EC, ...ML_DSA] },
  AsymmetricVerify: { usage: KeyUsage.SIGN_VERIFY, specs: [...RSA, ...EC, ...ML_DSA] },
  AsymmetricEncrypt: { usage: KeyUsage.ENCRYPT_DECRYPT, specs: RSA },
  AsymmetricDecrypt: { usage: KeyUsage.ENCRYPT_DECRYPT, specs: RSA },
  GetPublicKey: { usage: undefined, specs: [...RSA, ...EC, ...ML_DSA] },
  DeriveSharedSecret: { usage: KeyUsage.KEY_AGREEMENT, specs: KEY_AGREEMENT_SPECS },
  GenerateMac: { usage: KeyUsage.GENERATE_VERIFY_MAC, specs: HMAC },
  VerifyMac: { usage: KeyUsage.GENERATE_VERIFY_MAC, specs: HMAC },
} as const satisfies Record<string, { usage: KeyUsage | undefined; specs: readonly KeySpec[] }>;
export type CryptoOperation = keyof typeof OPERATION_NEEDS;

const STATE_ERROR: Partial<Record<KeyState, ErrorCode>> = {
  [KeyState.DISABLED]: ErrorCode.Disabled,
  [KeyState.PENDING_DELETION]: ErrorCode.PendingDeletion,
  [KeyState.PENDING_IMPORT]: ErrorCode.PendingImport,
};

/** FAILED_PRECONDITION naming the state, unless the key is ENABLED. */
export function checkEnabled(key: { keyId: string; keyState: KeyState }): void {
  if (key.keyState !== KeyState.ENABLED) {
    throw new KmsError(
      STATE_ERROR[key.keyState] ?? ErrorCode.Disabled,
      `key ${key.keyId} is ${keyStateName(key.keyState)}`,
    );
  }
}

/** Only an ENABLED key of the right usage and family may be used; otherwise FAILED_PRECONDITION. */
export function checkUsable(
  key: { keyId: string; keyState: KeyState; keyUsage: KeyUsage; keySpec: KeySpec },
  operation: CryptoOperation,
): void {
  checkEnabled(key);
  const needs = OPERATION_NEEDS[operation];
  const specs: readonly KeySpec[] = needs.specs;
  if ((needs.usage !== undefined && key.keyUsage !== needs.usage) || !specs.includes(key.keySpec)) {
    throw new KmsError(
      ErrorCode.KeyUsage,
      `key ${key.keyId} (${keySpecName(key.keySpec)}, ${keyUsageName(key.keyUsage)}) cannot be used for ${operation}`,
    );
  }
}

export const MAX_DESCRIPTION_CHARACTERS = 8192;
export const MIN_PLAINTEXT_BYTES = 1;
export const MAX_PLAINTEXT_BYTES = 6144;
export const MAX_DATA_KEY_BYTES = 1024;
export const DEFAULT_PAGE_SIZE = 100;
export const MAX_PAGE_SIZE = 1000;
export const MAX_TAGS = 20;

export function validateDescription(description: string, field = "description"): void {
  if ([...description].length > MAX_DESCRIPTION_CHARACTERS) {
    throw invalidArgument(field, `must be at most ${MAX_DESCRIPTION_CHARACTERS} characters`);
  }
  if (description.includes("\u0000")) throw invalidArgument(field, "must not contain U+0000");
}

export function validatePlaintext(plaintext: Uint8Array, field = "plaintext"): void {
  if (plaintext.length < MIN_PLAINTEXT_BYTES || plaintext.length > MAX_PLAINTEXT_BYTES) {
    throw invalidArgument(field, `must be ${MIN_PLAINTEXT_BYTES} to ${MAX_PLAINTEXT_BYTES} bytes, got ${plaintext.length}`);
  }
}

/** GenerateDataKey's length: key_spec or number_of_bytes, not both; neither means AES-256 (32 bytes). */
export function dataKeyLength(keySpec: DataKeySpec, numberOfBytes: number): number {
  if (keySpec !== DataKeySpec.UNSPECIFIED && numberOfBytes !== 0) {
    throw invalidArgument("number_of_bytes", "give either key_spec or number_of_bytes, not both");
  }
  if (numberOfBytes !== 0) {
    if (numberOfBytes < 1 || numberOfBytes > MAX_DATA_KEY_BYTES) {
      throw invalidArgument("number_of_bytes", `must be 1 to ${MAX_DATA_KEY_BYTES}, got ${numberOfBytes}`);
    }
    return numberOfBytes;
  }
  if (keySpec === DataKeySpec.UNSPECIFIED || keySpec === DataKeySpec.AES_256) return 32;
  if (keySpec === DataKeySpec.AES_128) return 16;
  throw invalidArgument("key_spec", `unknown value ${keySpec}`);
}

/** AIP page size: 0 means the default, above the maximum is the maximum, negative is an error. */
export function pageSize(requested: number, field = "page_size"): number {
  if (requested < 0) throw invalidArgument(field, `must not be negative, got ${requested}`);
  if (requested === 0) return DEFAULT_PAGE_SIZE;
  return Math.min(requested, MAX_PAGE_SIZE);
}

const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

/** A UUID in any case (key and version ids are stored lower-case). */
export function isUuid(value: string): boolean {
  return UUID.test(value);
}
const ALIAS = /^alias\/[a-zA-Z0-9:/_-]{1,255}$/;

export type KeyReference = { kind: "id"; keyId: string } | { kind: "alias"; aliasName: string };

/** A key_id field: a UUID (any case, returned lower-case) or "alias/<name>". */
export function parseKeyReference(value: string, field = "key_id"): KeyReference {
  if (value === "") throw invalidArgument(field, "is required");
  if (value.startsWith("alias/")) {
    validateAliasName(value, field);
    return { kind: "alias", aliasName: value };
  }
  if (!UUID.test(value)) throw invalidArgument(field, 'must be a key UUID or "alias/<name>"');
  return { kind: "id", keyId: value.toLowerCase() };
}

export function validateAliasName(value: string, field = "alias_name"): void {
  if (!ALIAS.test(value)) throw invalidArgument(field, 'must be "alias/" followed by 1 to 255 of [a-zA-Z0-9:/_-]');
}

export function validateTags(tags: Readonly<Record<string, string>>, field = "tags"): void {
  const entries = Object.entries(tags);
  if (entries.length > MAX_TAGS) throw invalidArgument(field, `at most ${MAX_TAGS} tags, got ${entries.length}`);
  for (const [key, value] of entries) {
    if (key === "" || [...key].length > 128) throw invalidArgument(field, "tag keys must be 1 to 128 characters");
    if ([...value].length > 256) throw invalidArgument(field, `tag ${JSON.stringify(key)}: value must be at most 256 characters`);
    if (key.includes("\u0000") || value.includes("\u0000")) throw invalidArgument(field, "tag keys and values must not contain U+0000");
  }
}

export * from "./lifecycle";
export * from "./import";
export * from "./key-agreement";

// Asymmetric and MAC rules: which algorithm suits which spec, and the size limits of their inputs.
const { SigningAlgorithm } = kmsResources;
type SigningAlgorithm = kmsResources.SigningAlgorithm;
type EncryptionAlgorithm = kmsResources.EncryptionAlgorithm;
export const signingAlgorithmName = (v: SigningAlgorithm) => enumName(kmsResources.SigningAlgorithmSchema, v);
export const encryptionAlgorithmName = (v: EncryptionAlgorithm) => enumName(kmsResources.EncryptionAlgorithmSchema, v);

/** The signing algorithms a key spec allows. */
export function allowedSigningAlgorithms(spec: KeySpec): SigningAlgorithm[] {
  return [...(KEY_SPECS.get(spec)?.signingAlgorithms ?? [])];
}

/** INVALID_ARGUMENT naming "algorithm" and the spec unless the algorithm suits the key. */
export function checkSigningAlgorithm(spec: KeySpec, algorithm: number): void {
  requireKnownEnum(kmsResources.SigningAlgorithmSchema, algorithm, "algorithm");
  if (!allowedSigningAlgorithms(spec).includes(algorithm)) {
    throw invalidArgument("algorithm", `${signingAlgorithmName(algorithm)} cannot be used with ${keySpecName(spec)}`);
  }
}

/** The hash a signing algorithm applies to messages; undefined for ED25519 and ML-DSA, which sign the message itself. */
export function signingHash(algorithm: SigningAlgorithm): { name: "sha256" | "sha384"; bytes: 32 | 48 } | undefined {
  if (algorithm === SigningAlgorithm.ECDSA_SHA_384) return { name: "sha384", bytes: 48 };
  if (algorithm === SigningAlgorithm.ED25519 || algorithm === SigningAlgorithm.ML_DSA_SHAKE_256) return undefined;
  return { name: "sha256", bytes: 32 };
}

/** A message to sign or MAC: 1 to 4096 bytes. */
export function validateMessage(message: Uint8Array, field = "message"): void {
  if (message.length < 1 || message.length > MAX_MESSAGE_BYTES) {
    throw invalidArgument(field, `must be 1 to ${MAX_MESSAGE_BYTES} bytes, got ${message.length}`);
  }
}

export type SignInput = { case: "digest" | "message" | "externalMu"; value: Uint8Array } | { case: undefined; value?: undefined };

/**
 * AsymmetricSign / AsymmetricVerify input: a digest of the algorithm's hash length, or a message of
 * 1..4096 bytes; ED25519 takes only a message; ML_DSA_SHAKE_256 a message or a 64-byte external μ.
 */
export function checkSignInput(algorithm: SigningAlgorithm, input: SignInput): void {
  const hash = signingHash(algorithm);
  if (input.case === undefined) throw invalidArgument("message", "either digest or message is required");
  if (input.case === "message") {
    validateMessage(input.value);
    return;
  }
  if (input.case === "externalMu") {
    if (algorithm !== SigningAlgorithm.ML_DSA_SHAKE_256) throw invalidArgument("external_mu", `is only for ML_DSA_SHAKE_256, not ${signingAlgorithmName(algorithm)}`);
    if (input.value.length !== EXTERNAL_MU_BYTES) throw invalidArgument("external_mu", `must be ${EXTERNAL_MU_BYTES} bytes, got ${input.value.length}`);
    return;
  }
  if (hash === undefined) throw invalidArgument("digest", `${signingAlgorithmName(algorithm)} signs the message itself; give message`);
  if (input.value.length !== hash.bytes) {
    throw invalidArgument("digest", `must be ${hash.bytes} bytes for ${signingAlgorithmName(algorithm)}, got ${input.value.length}`);
  }
}

/**
 * Checks an asymmetric encryption algorithm against an RSA key spec and returns the largest plaintext it
 * takes (RFC 8017 §7.1.1: k − 2·hLen − 2 bytes).
 */
export function checkEncryptionAlgorithm(spec: KeySpec, algorithm: number): { maxPlaintextBytes: number } {
  requireKnownEnum(kmsResources.EncryptionAlgorithmSchema, algorithm, "algorithm");
  const hLen = OAEP_HASHES[algorithm as EncryptionAlgorithm]?.bytes;
  const family = KEY_SPECS.get(spec)?.family;
  const k = family?.kind === "rsa" ? family.bits / 8 : undefined;
  if (hLen === undefined || k === undefined) {
    throw invalidArgument("algorithm", `${encryptionAlgorithmName(algorithm)} cannot be used with ${keySpecName(spec)}`);
  }
  return { maxPlaintextBytes: k - 2 * hLen - 2 };
}

/** GenerateRandom's number_of_bytes: 1 to 1024. */
export function validateRandomBytes(numberOfBytes: number, field = "number_of_bytes"): void {
  if (!Number.isInteger(numberOfBytes) || numberOfBytes < 1 || numberOfBytes > MAX_RANDOM_BYTES) {
    throw invalidArgument(field, `must be 1 to ${MAX_RANDOM_BYTES}, got ${numberOfBytes}`);
  }
}

// What a backend does, and the checked types it takes: a WrappedKey from the wire becomes a CheckedKey
// (known spec and level, one of our roots, plausible length) before any backend sees it.
import type { KeyObject } from "node:crypto";
import { status } from "@grpc/grpc-js";
import { ErrorCode, invalidArgument, KmsError } from "@kms/errors";
import type { kmsResources } from "@kms/proto";
import type { hsm } from "@kms/proto/internal";
import type { OaepHash } from "./asymmetric/oaep";
import type { SignInput, SigningScheme } from "./asymmetric/signing-scheme";
import { checkProtectionLevel, checkWrappedLength, keyFamily, wrongKeyFamily } from "./key-spec";
import type { KeyFamily } from "./key-spec";
import { FORMAT_2_OVERHEAD, splitFormat2 } from "./wrapped-format";
import type { Binding } from "./wrapped-format";

export interface BackendStatus {
  backend: hsm.Backend;
  rootKeyId: string;
  /** Module path and token label, or the root key file. Never a PIN. */
  description: string;
  hsmKeysSupported: boolean;
  /** Root key of earlier releases whose (format 1) material is still accepted; "" when there is none. */
  legacyRootKeyId: string;
  /** Specs this backend cannot keep at PROTECTION_LEVEL_HSM although it has HSM keys (module limits). */
  hsmUnsupportedKeySpecs: kmsResources.KeySpec[];
  /** Root sets a rotation is retiring: they still unwrap. */
  retiringRootKeyIds: string[];
  /** A source root file's ids (format 2, format 1): unwrap only, moved by a rotation. Empty: none. */
  sourceRootKeyIds?: string[];
}

/** What re-wrapping one version gave (RewrapKeys). */
export type Rewrap = { outcome: "rewrapped"; wrappedMaterial: Buffer; rootKeyId: string } | { outcome: "current" } | { outcome: "retained"; problem: string };

/**
 * Root key ids a backend accepts: `current` wraps everything new; `legacy` only unwraps format 1; `others`
 * (root sets a rotation is retiring) only unwrap format 2.
 */
export interface AcceptedRoots {
  current: string;
  legacy: string;
  others: readonly string[];
  /** More format 1 roots (a source root file's): unwrap only. */
  otherLegacy?: readonly string[];
}

/**
 * A WrappedKey whose fields were checked: known spec and level, one of our root keys, plausible length.
 * Format 2 material is not yet authenticated: the backend checks `tag` before it unwraps `kwp`.
 */
export interface CheckedKey<F extends KeyFamily = KeyFamily> {
  keyVersionId: string;
  /** The root the stored row names (one the backend accepts). */
  rootKeyId: string;
  keySpec: kmsResources.KeySpec;
  family: F;
  protectionLevel: kmsResources.ProtectionLevel;
  /** The whole blob as stored (the cache compares it). */
  wrappedMaterial: Uint8Array;
  /** "legacy": format 1 under the legacy root, trusted for spec and level as earlier releases did. */
  format: "v2" | "legacy";
  /** The RFC 5649 part: for format 2 without its header and tag. */
  kwp: Buffer;
  /** Format 2 only (empty for legacy). */
  tag: Buffer;
}

/** Material sealed (format 2) under a root set, and that set's id: the blob and the id that authenticates it. */
export interface Sealed {
  wrappedMaterial: Buffer;
  rootKeyId: string;
}

/** New key material: wrapped under the root key, and the public key of asymmetric specs. */
export interface GeneratedKey {
  wrappedMaterial: Uint8Array;
  /** The root set that sealed it (a rotation may switch the current one meanwhile). */
  rootKeyId: string;
  /** SubjectPublicKeyInfo (DER); empty for AES and HMAC. */
  publicKey: Uint8Array;
}

/** Families by operation: what each Backend method takes. */
export type AesKey = CheckedKey<Extract<KeyFamily, { kind: "aes" }>>;
export type HmacKey = CheckedKey<Extract<KeyFamily, { kind: "hmac" }>>;
export type RsaKey = CheckedKey<Extract<KeyFamily, { kind: "rsa" }>>;
export type SigningKey = CheckedKey<Extract<KeyFamily, { kind: "rsa" | "ec" | "ed25519" | "ml-dsa" }>>;
export type EcKey = CheckedKey<Extract<KeyFamily, { kind: "ec" }>>;

/** A peer's public key for ECDH, already checked (@kms/key-rules peerPublicKey): on the key's curve. */
export interface PeerKey {
  keyObject: KeyObject;
  /** The uncompressed point 04 ‖ x ‖ y (what C_DeriveKey takes). */
  point: Buffer;
}

/** Key material to make: a checked spec (its family), level and version id. */
export interface NewKey extends Binding {
  family: KeyFamily;
}

/** What the backend has in use, for metrics. */
export interface BackendMetrics {
  /** Unwrapped keys held (HSM session objects and KeyObjects). */
  cachedKeys: number;
  /** PKCS#11 sessions busy and calls waiting for one; undefined without a module. */
  sessions?: { inUse: number; waiting: number };
}

/**
 * What a backend does, on keys and arguments already checked (checked-calls.ts turns wire requests into
 * these). Both the PKCS#11 backend and the software-root backend implement it; handlers compose it
 * (ReEncrypt, GenerateDataKey) without knowing which one runs. `field` names the key in errors.
 */
export interface Backend {
  status(): BackendStatus;
  /** The roots whose material this backend takes, and whether it has HSM keys at all (checked on every call). */
  accepts(): Acceptance;
  /** New key material generated by the backend, returned wrapped under the root key (format 2). */
  generateKeyMaterial(key: NewKey, label: string): Promise<GeneratedKey>;
  /** AES-GCM with a fresh random IV: IV(12) ‖ ciphertext ‖ tag(16). */
  encrypt(key: AesKey, plaintext: Uint8Array, aad: Uint8Array, field: string): Promise<Buffer>;
  /** Every failure to open `sealed` is invalidCiphertext(). */
  decrypt(key: AesKey, sealed: Uint8Array, aad: Uint8Array, field: string): Promise<Buffer>;
  /** Signs a digest (RSA, ECDSA; DER for ECDSA) or a message (Ed25519). */
  sign(key: SigningKey, scheme: SigningScheme, input: SignInput): Promise<Buffer>;
  /** RSAES-OAEP; every failure to decrypt is invalidCiphertext(). */
  asymmetricDecrypt(key: RsaKey, hash: OaepHash, ciphertext: Uint8Array): Promise<Buffer>;
  /** HMAC with the key spec's hash, full length. */
  generateMac(key: HmacKey, message: Uint8Array): Promise<Buffer>;
  /** ECDH without a KDF: the shared point's x-coordinate (the field's length). */
  deriveSharedSecret(key: EcKey, peer: PeerKey): Promise<Buffer>;
  /** Random bytes from the HSM (or node:crypto on the software-root backend). */
  generateRandom(numberOfBytes: number): Promise<Buffer>;
  /**
   * Authenticates and unwraps a stored key version under its root and discards the result at once: never
   * used, never cached (CheckWrappedKeys, for verify-restore). Fails as a use of the key would.
   */
  checkKey(key: CheckedKey, field: string): Promise<void>;
  /**
   * Re-wraps a stored version under the current root (RewrapKeys, for root rotation), never returning
   * material in the clear; "retained" when it cannot move (and why).
   */
  rewrapKey(key: CheckedKey, field: string): Promise<Rewrap>;
  /** Root rotation's switch to a new current root set (PKCS#11 only): see Pkcs11Root.beginRotation. */
  beginRootRotation(fromRootKeyId: string): Promise<{ current: string; retiring: string[] }>;
  /** Destroys a retiring root (PKCS#11 only); false when it was already gone. */
  retireRoot(rootKeyId: string): Promise<boolean>;
  /** Reads the roots again (another worker rotated); true when what the backend holds changed. */
  refreshRoots(force?: boolean): Promise<boolean>;
  /** Drops cached unwrapped keys of these key versions. */
  forgetKeys(keyVersionIds: readonly string[]): Promise<void>;
  /** Format 2 wrap of raw material (an imported key), bound to `binding`. Does not wipe `material`. */
  wrapMaterial(material: Buffer, binding: Binding, label: string): Promise<Sealed>;
  /**
   * The format 1 wrap of `material` under the legacy root (undefined without one), only ever hashed: the
   * fingerprint earlier releases recorded for an import. Does not wipe `material`.
   */
  legacyWrap(material: Buffer, label: string): Promise<Buffer | undefined>;
  metrics(): BackendMetrics;
  /** Releases everything: cached keys, sessions, and the process's use of the PKCS#11 module. */
  close(): Promise<void>;
}

/** Root key ids a backend accepts, and whether it can hold PROTECTION_LEVEL_HSM keys at all. */
export interface Acceptance extends AcceptedRoots {
  hsmKeys: boolean;
}

/**
 * Validates a WrappedKey against this worker's root keys. `field` names it in errors ("key", "source_key").
 * The root key id says the format: the current root's material is format 2, the legacy root's format 1.
 */
export function checkWrappedKey(key: hsm.WrappedKey | undefined, field: string, roots: AcceptedRoots): CheckedKey {
  if (key === undefined) throw invalidArgument(field, "is required");
  if (key.keyVersionId === "") throw invalidArgument(`${field}.key_version_id`, "is required");
  const family = keyFamily(key.keySpec, `${field}.key_spec`);
  checkProtectionLevel(key.protectionLevel, `${field}.protection_level`);
  const common = { keyVersionId: key.keyVersionId, rootKeyId: key.rootKeyId, keySpec: key.keySpec, family, protectionLevel: key.protectionLevel, wrappedMaterial: key.wrappedMaterial };
  if (roots.current !== "" && (key.rootKeyId === roots.current || roots.others.includes(key.rootKeyId))) {
    const parts = splitFormat2(key.wrappedMaterial);
    if (parts === undefined) throw unwrapFailed(field);
    checkWrappedLength(family, key.keySpec, key.wrappedMaterial.length - FORMAT_2_OVERHEAD, `${field}.wrapped_material`, FORMAT_2_OVERHEAD);
    return { ...common, format: "v2", kwp: parts.kwp, tag: parts.tag };
  }
  if ((roots.legacy !== "" && key.rootKeyId === roots.legacy) || (key.rootKeyId !== "" && roots.otherLegacy?.includes(key.rootKeyId) === true)) {
    checkWrappedLength(family, key.keySpec, key.wrappedMaterial.length, `${field}.wrapped_material`);
    return { ...common, format: "legacy", kwp: Buffer.from(key.wrappedMaterial), tag: Buffer.alloc(0) };
  }
  throw rootKeyMismatch(`${field}.root_key_id`, key.rootKeyId, roots.current);
}

/** Narrows a checked key to the families an operation takes; INVALID_ARGUMENT naming the spec otherwise. */
export function requireFamily<K extends KeyFamily["kind"]>(
  checked: CheckedKey,
  kinds: readonly K[],
  field: string,
  operation: string,
): CheckedKey<Extract<KeyFamily, { kind: K }>> {
  if (!(kinds as readonly string[]).includes(checked.family.kind)) throw wrongKeyFamily(`${field}.key_spec`, checked.keySpec, operation);
  return checked as CheckedKey<Extract<KeyFamily, { kind: K }>>;
}

export function rootKeyMismatch(field: string, given: string, ours: string): KmsError {
  return new KmsError(
    ErrorCode.RootKeyMismatch,
    `${field}: material was wrapped under root key ${JSON.stringify(given)}; this worker holds root key ${JSON.stringify(ours)}`,
  );
}

/** Wrapped material that passed checkWrappedKey but does not unwrap under our root key (corrupt or forged). */
export function unwrapFailed(field: string): KmsError {
  return invalidArgument(`${field}.wrapped_material`, "does not unwrap under the root key");
}

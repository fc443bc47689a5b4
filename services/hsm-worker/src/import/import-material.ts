// Key import (bring your own key): material the caller wrapped with an import token's RSA wrapping key
// becomes material wrapped under the root key, like any generated key version.
//
// What runs where (docs/import.md says the same for operators):
// - The wrapping private key is a key version like any other: generated in the HSM on the PKCS#11 backend,
//   stored only wrapped under the root key, unwrapped into a sensitive HSM object for this call.
// - RSAES-OAEP is backend.asymmetricDecrypt: SHA-1 entirely inside the HSM; SHA-256 as raw RSA in the HSM
//   plus the constant-time OAEP decoder in the worker (SoftHSM 2.6 has OAEP with SHA-1 only).
// - The decrypted material (and, for RSA_AES_KEY_WRAP, the ephemeral AES key) is in worker memory for the
//   exact length check and the wrap under the root key, then zeroed. SoftHSM 2.6 cannot do the length check
//   inside the HSM: it reports CKA_VALUE_LEN 0 for unwrapped secrets and refuses CKA_VALUE_LEN in an unwrap
//   template, so an in-HSM C_UnwrapKey would accept 31 bytes as an AES-256 key.
import { createHash, createPrivateKey, createSecretKey } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { ErrorCode, invalidArgument, KmsError } from "@kms/errors";
import { kmsResources } from "@kms/proto";
import { hsm } from "@kms/proto/internal";
import { create } from "@bufbuild/protobuf";
import { keyFitsFamily, spkiOf } from "../asymmetric/public-key";
import type { Backend } from "../backend";
import { onWire } from "../checked-calls";
import { wipe } from "../bytes";
import { checkProtectionLevel, hsmUnsupported, keyFamily, keySpecName } from "../key-spec";
import type { KeyFamily } from "../key-spec";
import { kwpUnwrap, UnwrapError } from "../software/key-wrap";

const { EncryptionAlgorithm, KeySpec, ProtectionLevel, WrappingAlgorithm } = kmsResources;

/** Domain separation for fingerprints: a hash of a wrapped key is never confused with anything else. */
const FINGERPRINT_CONTEXT = Buffer.from("kms import fingerprint v1\0");

/** Modulus bytes of the wrapping key specs (GetParametersForImport makes only these). */
const WRAPPING_KEY_BYTES = new Map<kmsResources.KeySpec, number>([
  [KeySpec.RSA_2048, 256],
  [KeySpec.RSA_3072, 384],
  [KeySpec.RSA_4096, 512],
]);

/** The ephemeral key of RSA_AES_KEY_WRAP_SHA_256 is AES-256. */
const EPHEMERAL_KEY_BYTES = 32;

/** The one error for material that does not decrypt, whatever the cause (no padding oracle). */
export function undecryptable(): KmsError {
  return invalidArgument("encrypted_key_material", "does not decrypt with the import token's wrapping key");
}

/** SHA-256 over a fixed context and the material wrapped under the root key (RFC 5649 is deterministic). */
export function materialFingerprint(wrappedMaterial: Uint8Array): Buffer {
  return createHash("sha256").update(FINGERPRINT_CONTEXT).update(wrappedMaterial).digest();
}

/** Decrypts, checks, wraps under the root key and fingerprints imported material. */
export async function importKeyMaterial(backend: Backend, req: hsm.ImportKeyMaterialRequest): Promise<hsm.ImportKeyMaterialResponse> {
  const family = keyFamily(req.keySpec, "key_spec");
  checkProtectionLevel(req.protectionLevel, "protection_level");
  if (req.protectionLevel === ProtectionLevel.HSM && !backend.status().hsmKeysSupported) throw hsmUnsupported();
  if (req.keyVersionId === "") throw invalidArgument("key_version_id", "is required");
  const wrappingKey = req.wrappingKey;
  const k = wrappingKey === undefined ? undefined : WRAPPING_KEY_BYTES.get(wrappingKey.keySpec);
  if (wrappingKey === undefined || k === undefined) throw invalidArgument("wrapping_key.key_spec", "must be KEY_SPEC_RSA_2048, KEY_SPEC_RSA_3072 or KEY_SPEC_RSA_4096");
  try {
    const material = await decryptMaterial(backend, req, k);
    try {
      const { publicKey, canonical } = checkMaterial(family, req.keySpec, material);
      try {
        const binding = { keyVersionId: req.keyVersionId, keySpec: req.keySpec, protectionLevel: req.protectionLevel };
        const { wrappedMaterial, rootKeyId } = await backend.wrapMaterial(canonical, binding, req.label);
        // Format 2 is deterministic for one version id, so a re-import gives the same fingerprint; a key
        // first imported by an earlier release was fingerprinted over its format 1 wrap instead.
        const legacy = await backend.legacyWrap(canonical, req.label);
        return create(hsm.ImportKeyMaterialResponseSchema, {
          wrappedMaterial,
          rootKeyId,
          fingerprint: materialFingerprint(wrappedMaterial),
          publicKey,
          legacyFingerprint: legacy === undefined ? Buffer.alloc(0) : materialFingerprint(legacy),
        });
      } finally {
        if (canonical !== material) wipe(canonical);
      }
    } finally {
      wipe(material);
    }
  } finally {
    // A token is good for one import: its unwrapped private key need not stay in the cache. Best effort:
    // an HSM object we fail to destroy dies with its session, and the import's own outcome matters more.
    await backend.forgetKeys([wrappingKey.keyVersionId]).catch(() => undefined);
  }
}

/** The material the caller wrapped. Every decryption failure is the one undecryptable() error. */
async function decryptMaterial(backend: Backend, req: hsm.ImportKeyMaterialRequest, k: number): Promise<Buffer> {
  const encrypted = req.encryptedKeyMaterial;
  switch (req.wrappingAlgorithm) {
    case WrappingAlgorithm.RSAES_OAEP_SHA_256:
      return oaep(backend, req, EncryptionAlgorithm.RSAES_OAEP_SHA_256, encrypted);
    case WrappingAlgorithm.RSAES_OAEP_SHA_1:
      return oaep(backend, req, EncryptionAlgorithm.RSAES_OAEP_SHA_1, encrypted);
    case WrappingAlgorithm.RSA_AES_KEY_WRAP_SHA_256: {
      // CKM_RSA_AES_KEY_WRAP format: OAEP(SHA-256) of the ephemeral key ‖ RFC 5649 wrap of the material.
      if (encrypted.length <= k) throw undecryptable();
      const ephemeral = await oaep(backend, req, EncryptionAlgorithm.RSAES_OAEP_SHA_256, encrypted.subarray(0, k));
      let kek: KeyObject;
      try {
        if (ephemeral.length !== EPHEMERAL_KEY_BYTES) throw undecryptable();
        kek = createSecretKey(ephemeral);
      } finally {
        wipe(ephemeral);
      }
      try {
        return kwpUnwrap(kek, encrypted.subarray(k));
      } catch (err) {
        if (err instanceof UnwrapError) throw undecryptable();
        throw err;
      }
    }
    default:
      throw invalidArgument("wrapping_algorithm", "must be RSAES_OAEP_SHA_256, RSAES_OAEP_SHA_1 or RSA_AES_KEY_WRAP_SHA_256");
  }
}

async function oaep(
  backend: Backend,
  req: hsm.ImportKeyMaterialRequest,
  algorithm: kmsResources.EncryptionAlgorithm,
  ciphertext: Uint8Array,
): Promise<Buffer> {
  try {
    return await onWire(backend).asymmetricDecrypt(req.wrappingKey, algorithm, ciphertext);
  } catch (err) {
    // Ciphertext failures keep one message; a wrapping key that does not unwrap is a different problem.
    if (err instanceof KmsError && err.code === ErrorCode.InvalidCiphertext) throw undecryptable();
    throw asWrappingKeyError(err);
  }
}

/** Errors about the wrapping key name it as such (the backend says "key"). */
function asWrappingKeyError(err: unknown): unknown {
  if (err instanceof KmsError && err.message.startsWith("key.")) return new KmsError(err.code, `wrapping_${err.message}`);
  return err;
}

/**
 * Raw keys must have exactly the spec's length. Private keys must be PKCS#8 of the spec's type and size;
 * they are re-encoded (node:crypto's DER), so equal keys give equal fingerprints whatever the encoding.
 */
function checkMaterial(family: KeyFamily, spec: kmsResources.KeySpec, material: Buffer): { publicKey: Buffer; canonical: Buffer } {
  if (family.kind === "aes" || family.kind === "hmac") {
    if (material.length !== family.bytes) {
      throw invalidArgument("encrypted_key_material", `key material must be ${family.bytes} bytes for ${keySpecName(spec)}, got ${material.length}`);
    }
    return { publicKey: Buffer.alloc(0), canonical: material };
  }
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: material, format: "der", type: "pkcs8" });
  } catch {
    throw invalidArgument("encrypted_key_material", `key material must be a PKCS#8 private key for ${keySpecName(spec)}`);
  }
  if (!keyFitsFamily(key, family)) {
    throw invalidArgument("encrypted_key_material", `the PKCS#8 private key is not a ${keySpecName(spec)} key`);
  }
  return { publicKey: spkiOf(key), canonical: key.export({ type: "pkcs8", format: "der" }) };
}

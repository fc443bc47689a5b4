// HSM-side work for HMAC and asymmetric keys: key generation, the templates keys are unwrapped with, and
// the operations (C_Sign, C_Decrypt) on unwrapped session objects.
import * as pkcs11js from "pkcs11js";
import { invalidCiphertext } from "@kms/errors";
import { pkcs11Input, wipe } from "../bytes";
import type { EcCurve, KeyFamily } from "../key-spec";
import { FIELD_BYTES, lowS, rawToDer } from "../asymmetric/ecdsa-signature";
import { oaepDecode } from "../asymmetric/oaep";
import { ecSpki, ed25519Spki, rsaSpki } from "../asymmetric/public-key";
import { digestInfo } from "../asymmetric/rsa-padding";
import type { SigningScheme, SignInput } from "../asymmetric/signing-scheme";
import { readAttributes } from "./attributes";
import { hasCode, hsmCall, hsmCallAsync, hsmShortCall, isSessionLoss } from "./errors";
import type { CallMode } from "./errors";

// PKCS#11 3.0 values that pkcs11js 2.1 does not export.
export const CKK_EC_EDWARDS = 0x40;
const CKM_EC_EDWARDS_KEY_PAIR_GEN = 0x1055;
const CKM_EDDSA = 0x1057;
const CKZ_DATA_SPECIFIED = 0x1;

/** DER ECParameters (namedCurve OIDs) for CKA_EC_PARAMS. */
export const EC_PARAMS: Record<EcCurve | "ed25519", Buffer> = {
  "P-256": Buffer.from("06082a8648ce3d030107", "hex"),
  "P-384": Buffer.from("06052b81040022", "hex"),
  secp256k1: Buffer.from("06052b8104000a", "hex"),
  ed25519: Buffer.from("06032b6570", "hex"),
};

const HMAC_MECHANISM = { sha256: pkcs11js.CKM_SHA256_HMAC, sha384: pkcs11js.CKM_SHA384_HMAC, sha512: pkcs11js.CKM_SHA512_HMAC };

/** Public key template of a generated pair: a session object, used only to read the public key. */
function publicTemplate(family: KeyFamily): pkcs11js.Template {
  const common = [{ type: pkcs11js.CKA_TOKEN, value: false }];
  if (family.kind === "rsa") {
    return [...common, { type: pkcs11js.CKA_MODULUS_BITS, value: family.bits }, { type: pkcs11js.CKA_PUBLIC_EXPONENT, value: Buffer.from([1, 0, 1]) }];
  }
  if (family.kind === "ec") return [...common, { type: pkcs11js.CKA_EC_PARAMS, value: EC_PARAMS[family.curve] }];
  throw new RangeError(`no HSM key pair generation for ${family.kind}`);
}

/**
 * Generates an RSA or EC pair in the HSM. The private key is sensitive and extractable only so that it
 * can leave wrapped (as PKCS#8); the caller wraps and destroys both objects.
 */
export async function hsmGenerateKeyPair(
  lib: pkcs11js.PKCS11,
  session: pkcs11js.Handle,
  family: KeyFamily,
  label: string,
): Promise<pkcs11js.KeyPair> {
  const mechanism = family.kind === "rsa" ? pkcs11js.CKM_RSA_PKCS_KEY_PAIR_GEN : pkcs11js.CKM_EC_KEY_PAIR_GEN;
  return hsmCallAsync("C_GenerateKeyPair(key material)", () =>
    lib.C_GenerateKeyPairAsync(session, { mechanism }, [...publicTemplate(family), { type: pkcs11js.CKA_LABEL, value: label }], [
      { type: pkcs11js.CKA_TOKEN, value: false },
      { type: pkcs11js.CKA_PRIVATE, value: true },
      { type: pkcs11js.CKA_SENSITIVE, value: true },
      { type: pkcs11js.CKA_EXTRACTABLE, value: true },
      { type: pkcs11js.CKA_SIGN, value: false },
      { type: pkcs11js.CKA_DECRYPT, value: false },
      { type: pkcs11js.CKA_LABEL, value: label },
    ]),
  );
}

/** A generic secret for HMAC, generated in the HSM; extractable only to leave wrapped. */
export function hsmGenerateHmacKey(
  lib: pkcs11js.PKCS11,
  session: pkcs11js.Handle,
  bytes: number,
  label: string,
): Promise<pkcs11js.Handle> {
  return hsmCallAsync("C_GenerateKey(HMAC key)", () =>
    lib.C_GenerateKeyAsync(session, { mechanism: pkcs11js.CKM_GENERIC_SECRET_KEY_GEN }, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
      { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_GENERIC_SECRET },
      { type: pkcs11js.CKA_VALUE_LEN, value: bytes },
      { type: pkcs11js.CKA_TOKEN, value: false },
      { type: pkcs11js.CKA_PRIVATE, value: true },
      { type: pkcs11js.CKA_SENSITIVE, value: true },
      { type: pkcs11js.CKA_EXTRACTABLE, value: true },
      { type: pkcs11js.CKA_SIGN, value: false },
      { type: pkcs11js.CKA_LABEL, value: label },
    ]),
  );
}

/** CKA_EC_POINT is a DER OCTET STRING around the point (SoftHSM, and PKCS#11 2.40 says so). */
function unwrapOctetString(value: Buffer): Buffer {
  if (value[0] !== 0x04) return value;
  const long = value[1] === 0x81;
  const length = long ? value[2]! : value[1]!;
  const start = long ? 3 : 2;
  return start + length === value.length ? value.subarray(start) : value;
}

/** The SubjectPublicKeyInfo of a public key object. */
export function hsmPublicKey(lib: pkcs11js.PKCS11, session: pkcs11js.Handle, publicKey: pkcs11js.Handle, family: KeyFamily): Buffer {
  if (family.kind === "rsa") {
    const a = readAttributes(lib, session, publicKey, [pkcs11js.CKA_MODULUS, pkcs11js.CKA_PUBLIC_EXPONENT], "RSA public key");
    return rsaSpki(a.get(pkcs11js.CKA_MODULUS) ?? Buffer.alloc(0), a.get(pkcs11js.CKA_PUBLIC_EXPONENT) ?? Buffer.alloc(0));
  }
  const point = readAttributes(lib, session, publicKey, [pkcs11js.CKA_EC_POINT], "EC public key").get(pkcs11js.CKA_EC_POINT);
  const raw = unwrapOctetString(point ?? Buffer.alloc(0));
  if (family.kind === "ec") return ecSpki(family.curve, raw, FIELD_BYTES[family.curve]);
  if (family.kind === "ed25519") return ed25519Spki(raw);
  throw new RangeError(`no public key for ${family.kind}`);
}

/** Template for unwrapping an HSM-level key into a sensitive, non-extractable session object. */
export function hsmUnwrapTemplate(family: KeyFamily): pkcs11js.Template {
  const common: pkcs11js.Template = [
    { type: pkcs11js.CKA_TOKEN, value: false },
    { type: pkcs11js.CKA_PRIVATE, value: true },
    { type: pkcs11js.CKA_SENSITIVE, value: true },
    { type: pkcs11js.CKA_EXTRACTABLE, value: false },
    { type: pkcs11js.CKA_SIGN, value: true },
  ];
  switch (family.kind) {
    case "hmac":
      return [{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY }, { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_GENERIC_SECRET }, ...common];
    case "rsa":
      // The worker does not know the key's usage (kms-api enforces it), so an RSA object may sign and decrypt.
      return [
        { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
        { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_RSA },
        ...common,
        { type: pkcs11js.CKA_DECRYPT, value: true },
      ];
    case "ec":
      return [{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY }, { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_EC }, ...common];
    default:
      throw new RangeError(`no unwrap template for ${family.kind}`);
  }
}

/** PKCS#8 PrivateKeyInfo of an Ed25519 key is this fixed prefix followed by the 32-byte seed (RFC 8410). */
export const ED25519_PKCS8_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");

/**
 * Creates a sensitive Ed25519 session object from its seed. SoftHSM 2.6 can neither wrap nor unwrap EdDSA
 * private keys (CKR_KEY_NOT_WRAPPABLE, CKR_FUNCTION_FAILED), so HSM-level Ed25519 material is a wrapped
 * PKCS#8 that the worker unwraps as bytes and turns into an object here (see hsm-backend.ts).
 */
export function hsmCreateEd25519Key(lib: pkcs11js.PKCS11, session: pkcs11js.Handle, seed: Buffer): pkcs11js.Handle {
  return hsmCall("C_CreateObject(Ed25519 key)", () =>
    lib.C_CreateObject(session, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
      { type: pkcs11js.CKA_KEY_TYPE, value: CKK_EC_EDWARDS },
      { type: pkcs11js.CKA_EC_PARAMS, value: EC_PARAMS.ed25519 },
      { type: pkcs11js.CKA_VALUE, value: seed },
      { type: pkcs11js.CKA_TOKEN, value: false },
      { type: pkcs11js.CKA_PRIVATE, value: true },
      { type: pkcs11js.CKA_SENSITIVE, value: true },
      { type: pkcs11js.CKA_EXTRACTABLE, value: false },
      { type: pkcs11js.CKA_SIGN, value: true },
    ]),
  );
}

function signMechanism(scheme: SigningScheme): pkcs11js.Mechanism {
  switch (scheme.kind) {
    case "rsa-pss": {
      const parameter: pkcs11js.RsaPSS = {
        type: pkcs11js.CK_PARAMS_RSA_PSS,
        hashAlg: pkcs11js.CKM_SHA256,
        mgf: pkcs11js.CKG_MGF1_SHA256,
        saltLen: scheme.saltBytes,
      };
      return { mechanism: pkcs11js.CKM_RSA_PKCS_PSS, parameter };
    }
    case "rsa-pkcs1":
      return { mechanism: pkcs11js.CKM_RSA_PKCS };
    case "ecdsa":
      return { mechanism: pkcs11js.CKM_ECDSA };
    case "ed25519":
      return { mechanism: CKM_EDDSA };
  }
}

/** Signs in the HSM; ECDSA comes back raw and is returned as DER (low-S for secp256k1). */
export async function hsmSign(
  lib: pkcs11js.PKCS11,
  session: pkcs11js.Handle,
  key: pkcs11js.Handle,
  scheme: SigningScheme,
  input: SignInput,
  mode: CallMode = "thread-pool",
): Promise<Buffer> {
  const data =
    input.kind === "message" ? Buffer.from(input.message) : scheme.kind === "rsa-pkcs1" ? digestInfo(scheme.hash, input.digest) : Buffer.from(input.digest);
  hsmCall("C_SignInit", () => lib.C_SignInit(session, signMechanism(scheme), key));
  // 512 bytes hold an RSA-4096 signature, and everything smaller.
  const dataIn = pkcs11Input(data);
  const out = Buffer.alloc(512);
  // RSA takes about a millisecond in SoftHSM2: always off this thread.
  const signMode = scheme.kind === "rsa-pkcs1" || scheme.kind === "rsa-pss" ? "thread-pool" : mode;
  const signature = await hsmShortCall(signMode, "C_Sign", () => lib.C_Sign(session, dataIn, out), () => lib.C_SignAsync(session, dataIn, out));
  if (scheme.kind !== "ecdsa") return Buffer.from(signature);
  return rawToDer(scheme.curve === "secp256k1" ? lowS(signature, scheme.curve) : signature);
}

export async function hsmMac(
  lib: pkcs11js.PKCS11,
  session: pkcs11js.Handle,
  key: pkcs11js.Handle,
  hash: "sha256" | "sha384" | "sha512",
  message: Uint8Array,
  mode: CallMode = "thread-pool",
): Promise<Buffer> {
  hsmCall("C_SignInit(HMAC)", () => lib.C_SignInit(session, { mechanism: HMAC_MECHANISM[hash] }, key));
  // No copy: VerifyMac wipes the expected MAC, and this is the only buffer that holds it.
  const input = pkcs11Input(message);
  const out = Buffer.alloc(64);
  return hsmShortCall(mode, "C_Sign(HMAC)", () => lib.C_Sign(session, input, out), () => lib.C_SignAsync(session, input, out));
}

/** Codes with which a decryption reports a ciphertext it cannot use: all become invalidCiphertext(). */
const DECRYPT_REJECTED = [
  pkcs11js.CKR_ENCRYPTED_DATA_INVALID,
  pkcs11js.CKR_ENCRYPTED_DATA_LEN_RANGE,
  pkcs11js.CKR_DATA_INVALID,
  pkcs11js.CKR_DATA_LEN_RANGE,
  pkcs11js.CKR_GENERAL_ERROR,
];

async function hsmDecryptRaw(
  lib: pkcs11js.PKCS11,
  session: pkcs11js.Handle,
  key: pkcs11js.Handle,
  mechanism: pkcs11js.Mechanism,
  ciphertext: Uint8Array,
  k: number,
): Promise<Buffer> {
  hsmCall("C_DecryptInit(RSA)", () => lib.C_DecryptInit(session, mechanism, key));
  const out = Buffer.alloc(k);
  try {
    return await hsmCallAsync("C_Decrypt(RSA)", () => lib.C_DecryptAsync(session, Buffer.from(ciphertext), out));
  } catch (err) {
    out.fill(0);
    if (isSessionLoss(err)) throw err;
    if (hasCode(err, ...DECRYPT_REJECTED)) throw invalidCiphertext();
    throw err;
  }
}

/**
 * RSAES-OAEP decryption with an HSM key of `k` modulus bytes. SHA-1 runs entirely in the HSM
 * (CKM_RSA_PKCS_OAEP); SHA-256, which SoftHSM 2.6 does not offer, is raw RSA in the HSM (CKM_RSA_X_509)
 * plus constant-time OAEP decoding in the worker (oaep.ts says why and at what cost). The API has no
 * label; `label` (SHA-256 path) exists for test vectors.
 */
export async function hsmOaepDecrypt(
  lib: pkcs11js.PKCS11,
  session: pkcs11js.Handle,
  key: pkcs11js.Handle,
  hash: "sha1" | "sha256",
  ciphertext: Uint8Array,
  k: number,
  label?: Uint8Array,
): Promise<Buffer> {
  // A length other than k is malformed whatever the key: refused before the HSM sees it.
  if (ciphertext.length !== k) throw invalidCiphertext();
  if (hash === "sha1") {
    const parameter: pkcs11js.RsaOAEP = {
      type: pkcs11js.CK_PARAMS_RSA_OAEP,
      hashAlg: pkcs11js.CKM_SHA_1,
      mgf: pkcs11js.CKG_MGF1_SHA1,
      source: CKZ_DATA_SPECIFIED,
    };
    return hsmDecryptRaw(lib, session, key, { mechanism: pkcs11js.CKM_RSA_PKCS_OAEP, parameter }, ciphertext, k);
  }
  const raw = await hsmDecryptRaw(lib, session, key, { mechanism: pkcs11js.CKM_RSA_X_509 }, ciphertext, k);
  // Some modules drop leading zero bytes of the raw result; OAEP needs all k bytes. Always the same
  // steps, whatever the length (which tells whether the result began with zero bytes: Manger's oracle):
  // copy it right-aligned into a fresh zeroed k-byte buffer and wipe the module's output.
  const em = Buffer.alloc(k);
  raw.copy(em, k - raw.length);
  wipe(raw);
  return oaepDecode("sha256", em, label);
}

// RSA in the HSM: the public half of generated pairs, the unwrap template, the signing mechanisms and
// RSAES-OAEP decryption. How OAEP with SHA-256 runs is the module profile's choice (capabilities.ts).
import * as pkcs11js from "pkcs11js";
import { invalidCiphertext } from "@kms/errors";
import { wipe } from "../bytes";
import { oaepDecode } from "../asymmetric/oaep";
import type { OaepHash } from "../asymmetric/oaep";
import { rsaSpki } from "../asymmetric/public-key";
import type { SigningScheme } from "../asymmetric/signing-scheme";
import { readAttributes } from "./attributes";
import { hasCode, hsmCall, hsmCallAsync, isSessionLoss } from "./errors";

const CKZ_DATA_SPECIFIED = 0x1;

export const RSA_KEY_PAIR_GEN: pkcs11js.Mechanism = { mechanism: pkcs11js.CKM_RSA_PKCS_KEY_PAIR_GEN };

export function rsaPublicTemplate(bits: number): pkcs11js.Template {
  return [{ type: pkcs11js.CKA_MODULUS_BITS, value: bits }, { type: pkcs11js.CKA_PUBLIC_EXPONENT, value: Buffer.from([1, 0, 1]) }];
}

export function rsaPublicKey(lib: pkcs11js.PKCS11, session: pkcs11js.Handle, publicKey: pkcs11js.Handle): Buffer {
  const a = readAttributes(lib, session, publicKey, [pkcs11js.CKA_MODULUS, pkcs11js.CKA_PUBLIC_EXPONENT], "RSA public key");
  return rsaSpki(a.get(pkcs11js.CKA_MODULUS) ?? Buffer.alloc(0), a.get(pkcs11js.CKA_PUBLIC_EXPONENT) ?? Buffer.alloc(0));
}

/** The worker does not know the key's usage (kms-api enforces it), so an RSA object may sign and decrypt. */
export const RSA_UNWRAP_CLASS: pkcs11js.Template = [
  { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
  { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_RSA },
];
export const RSA_UNWRAP_USAGE: pkcs11js.Template = [{ type: pkcs11js.CKA_DECRYPT, value: true }];

/** True when the unwrapped object has the spec's modulus size. */
export function rsaFits(lib: pkcs11js.PKCS11, session: pkcs11js.Handle, handle: pkcs11js.Handle, bits: number): boolean {
  const modulus = readAttributes(lib, session, handle, [pkcs11js.CKA_MODULUS], "unwrapped key modulus").get(pkcs11js.CKA_MODULUS);
  return modulus !== undefined && modulus.length === bits / 8;
}

export function rsaSignMechanism(scheme: Extract<SigningScheme, { kind: "rsa-pss" | "rsa-pkcs1" }>): pkcs11js.Mechanism {
  if (scheme.kind === "rsa-pkcs1") return { mechanism: pkcs11js.CKM_RSA_PKCS };
  const parameter: pkcs11js.RsaPSS = { type: pkcs11js.CK_PARAMS_RSA_PSS, hashAlg: pkcs11js.CKM_SHA256, mgf: pkcs11js.CKG_MGF1_SHA256, saltLen: scheme.saltBytes };
  return { mechanism: pkcs11js.CKM_RSA_PKCS_PSS, parameter };
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

const OAEP_PARAMETERS: Record<OaepHash, { hashAlg: number; mgf: number }> = {
  sha1: { hashAlg: pkcs11js.CKM_SHA_1, mgf: pkcs11js.CKG_MGF1_SHA1 },
  sha256: { hashAlg: pkcs11js.CKM_SHA256, mgf: pkcs11js.CKG_MGF1_SHA256 },
};

/**
 * RSAES-OAEP decryption with an HSM key of `k` modulus bytes. SHA-1 runs entirely in the HSM
 * (CKM_RSA_PKCS_OAEP). SHA-256 does too when the module offers it (`sha256` "native"); for a module that
 * does not (SoftHSM 2.6: "raw-rsa") it is raw RSA in the HSM (CKM_RSA_X_509) plus constant-time OAEP
 * decoding in the worker (oaep.ts says why and at what cost). The API has no label; `label` (raw-RSA
 * path) exists for test vectors.
 */
export async function hsmOaepDecrypt(
  lib: pkcs11js.PKCS11,
  session: pkcs11js.Handle,
  key: pkcs11js.Handle,
  hash: OaepHash,
  ciphertext: Uint8Array,
  k: number,
  label?: Uint8Array,
  sha256: "native" | "raw-rsa" = "raw-rsa",
): Promise<Buffer> {
  // A length other than k is malformed whatever the key: refused before the HSM sees it.
  if (ciphertext.length !== k) throw invalidCiphertext();
  if (hash === "sha1" || sha256 === "native") {
    const parameter: pkcs11js.RsaOAEP = { type: pkcs11js.CK_PARAMS_RSA_OAEP, ...OAEP_PARAMETERS[hash], source: CKZ_DATA_SPECIFIED };
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

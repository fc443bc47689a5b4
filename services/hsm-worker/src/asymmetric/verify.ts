// Signature verification against a public key: the one function AsymmetricVerify uses, whatever the
// protection level (a public key needs no HSM). Every malformed signature is simply "not valid".
//
// RSA and ECDSA verify a digest (the kms-api hashes messages), which node:crypto cannot do: RSA goes
// through raw RSA (publicDecrypt with RSA_NO_PADDING) and the EMSA encodings; ECDSA through
// @noble/curves with prehash off. secp256k1 policy: high-S signatures are ACCEPTED, as OpenSSL and
// standard ECDSA do (our own signatures are always low-S; see ecdsa-signature.ts).
import { constants, publicDecrypt, timingSafeEqual, verify as nodeVerify } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { p256, p384 } from "@noble/curves/nist";
import { secp256k1 } from "@noble/curves/secp256k1";
import type { EcCurve } from "../key-spec";
import { ecPoint } from "./public-key";
import { emsaPkcs1v15, emsaPssVerify } from "./rsa-padding";
import type { SigningScheme, SignInput } from "./signing-scheme";

export const NOBLE_CURVE = { "P-256": p256, "P-384": p384, secp256k1 } satisfies Record<EcCurve, unknown>;

export interface VerifyOptions {
  /** ECDSA signature encoding: DER (the API's) or IEEE P1363 r ‖ s (for test vectors only). */
  dsaEncoding?: "der" | "ieee-p1363";
}

function rawRsa(publicKey: KeyObject, signature: Uint8Array): Buffer | undefined {
  const k = Math.ceil((publicKey.asymmetricKeyDetails?.modulusLength ?? 0) / 8);
  if (signature.length !== k) return undefined;
  try {
    return publicDecrypt({ key: publicKey, padding: constants.RSA_NO_PADDING }, signature);
  } catch {
    return undefined; // signature representative ≥ n
  }
}

export function verifySignature(
  publicKey: KeyObject,
  scheme: SigningScheme,
  input: SignInput,
  signature: Uint8Array,
  options: VerifyOptions = {},
): boolean {
  if (scheme.kind === "ml-dsa" || input.kind === "external-mu") throw new RangeError("ML-DSA signatures are checked by ml-dsa.ts");
  if (scheme.kind === "ed25519") {
    if (input.kind !== "message") return false;
    try {
      return nodeVerify(null, input.message, publicKey, signature);
    } catch {
      return false;
    }
  }
  if (input.kind !== "digest") return false;
  if (scheme.kind === "ecdsa") {
    const format = options.dsaEncoding === "ieee-p1363" ? "compact" : "der";
    try {
      return NOBLE_CURVE[scheme.curve].verify(signature, input.digest, ecPoint(publicKey), { prehash: false, lowS: false, format });
    } catch {
      return false;
    }
  }
  const em = rawRsa(publicKey, signature);
  if (em === undefined) return false;
  const modulusBits = publicKey.asymmetricKeyDetails?.modulusLength ?? 0;
  if (scheme.kind === "rsa-pkcs1") {
    const expected = emsaPkcs1v15(scheme.hash, input.digest, em.length);
    return timingSafeEqual(em, expected);
  }
  // EM is ceil((modBits − 1) / 8) bytes: one less than k when modBits ≡ 1 (mod 8), and then the top byte is 0.
  const emBits = modulusBits - 1;
  const emLen = Math.ceil(emBits / 8);
  if (emLen < em.length && em[0] !== 0) return false;
  return emsaPssVerify(scheme.hash, input.digest, em.subarray(em.length - emLen), emBits, scheme.saltBytes);
}

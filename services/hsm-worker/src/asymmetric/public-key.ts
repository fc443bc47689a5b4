// SubjectPublicKeyInfo (DER) of key versions: built from PKCS#11 attributes or a private KeyObject, and
// parsed back (with a check that it fits the key spec) for verification.
import { createPublicKey } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { invalidArgument } from "@kms/errors";
import type { EcCurve, KeyFamily } from "../key-spec";

/** node:crypto's names for our curves. */
export const NODE_CURVE: Record<EcCurve, string> = { "P-256": "prime256v1", "P-384": "secp384r1", secp256k1: "secp256k1" };
/** JWK "crv" values. */
const JWK_CURVE: Record<EcCurve, string> = { "P-256": "P-256", "P-384": "P-384", secp256k1: "secp256k1" };

const b64url = (b: Uint8Array) => Buffer.from(b).toString("base64url");

function spki(key: KeyObject): Buffer {
  return key.export({ type: "spki", format: "der" });
}

export function rsaSpki(modulus: Uint8Array, publicExponent: Uint8Array): Buffer {
  return spki(createPublicKey({ key: { kty: "RSA", n: b64url(modulus), e: b64url(publicExponent) }, format: "jwk" }));
}

/** From an uncompressed point 04 ‖ x ‖ y. */
export function ecSpki(curve: EcCurve, point: Uint8Array, fieldBytes: number): Buffer {
  if (point.length !== 1 + 2 * fieldBytes || point[0] !== 0x04) throw new RangeError("not an uncompressed EC point");
  const x = point.subarray(1, 1 + fieldBytes);
  const y = point.subarray(1 + fieldBytes);
  return spki(createPublicKey({ key: { kty: "EC", crv: JWK_CURVE[curve], x: b64url(x), y: b64url(y) }, format: "jwk" }));
}

export function ed25519Spki(publicKey: Uint8Array): Buffer {
  return spki(createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: b64url(publicKey) }, format: "jwk" }));
}

export function spkiOf(privateKey: KeyObject): Buffer {
  return spki(createPublicKey(privateKey));
}

/** True when `key` (public or private) is of this family and size. */
export function keyFitsFamily(key: KeyObject, family: KeyFamily): boolean {
  const details = key.asymmetricKeyDetails;
  switch (family.kind) {
    case "rsa":
      return key.asymmetricKeyType === "rsa" && details?.modulusLength === family.bits;
    case "ec":
      return key.asymmetricKeyType === "ec" && details?.namedCurve === NODE_CURVE[family.curve];
    case "ed25519":
      return key.asymmetricKeyType === "ed25519";
    default:
      return false;
  }
}

/**
 * An EC SubjectPublicKeyInfo whose point is the identity (BIT STRING 00 ‖ 00, so the SPKI ends 03 02 00 00).
 * Node 20 parses it, then aborts the whole process on reading its details or exporting it
 * (crypto_ec.cc asserts); no real point has so short an encoding.
 */
function isEcIdentity(der: Uint8Array): boolean {
  const n = der.length;
  return n >= 4 && der[n - 4] === 0x03 && der[n - 3] === 0x02 && der[n - 2] === 0x00 && der[n - 1] === 0x00;
}

/** Parses a SubjectPublicKeyInfo and checks it fits the family; INVALID_ARGUMENT naming `field` otherwise. */
export function parsePublicKey(der: Uint8Array, family: KeyFamily, field = "public_key"): KeyObject {
  if (isEcIdentity(der)) throw invalidArgument(field, "is the point at infinity, not a public key");
  let key: KeyObject;
  try {
    key = createPublicKey({ key: Buffer.from(der), format: "der", type: "spki" });
  } catch {
    throw invalidArgument(field, "is not a DER SubjectPublicKeyInfo");
  }
  if (!keyFitsFamily(key, family)) throw invalidArgument(field, "does not match the key spec");
  return key;
}

/** The uncompressed point 04 ‖ x ‖ y of an EC public key. */
export function ecPoint(key: KeyObject): Buffer {
  const jwk = key.export({ format: "jwk" });
  return Buffer.concat([Buffer.from([0x04]), Buffer.from(jwk.x ?? "", "base64url"), Buffer.from(jwk.y ?? "", "base64url")]);
}

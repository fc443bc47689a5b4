// Elliptic curves in the HSM: ECDSA (P-256, P-384, secp256k1) and Ed25519: curve parameters, the public
// half of generated pairs, the unwrap template, the signing mechanisms, and the Ed25519 seed path.
import * as pkcs11js from "pkcs11js";
import { FIELD_BYTES } from "../asymmetric/ecdsa-signature";
import { ecSpki, ed25519Spki } from "../asymmetric/public-key";
import type { EcCurve } from "../key-spec";
import { ErrorCode, InternalError, KmsError } from "@kms/errors";
import { readAttributes } from "./attributes";
import { hasCode, hsmCall, hsmCallAsync } from "./errors";
import { destroyObject } from "./with-session";

// PKCS#11 3.0 values that pkcs11js 2.1 does not export.
export const CKK_EC_EDWARDS = 0x40;
export const CKM_EDDSA = 0x1057;

/** DER ECParameters (namedCurve OIDs) for CKA_EC_PARAMS. */
export const EC_PARAMS: Record<EcCurve | "ed25519", Buffer> = {
  "P-256": Buffer.from("06082a8648ce3d030107", "hex"),
  "P-384": Buffer.from("06052b81040022", "hex"),
  secp256k1: Buffer.from("06052b8104000a", "hex"),
  ed25519: Buffer.from("06032b6570", "hex"),
};

export const EC_KEY_PAIR_GEN: pkcs11js.Mechanism = { mechanism: pkcs11js.CKM_EC_KEY_PAIR_GEN };

export function ecPublicTemplate(curve: EcCurve): pkcs11js.Template {
  return [{ type: pkcs11js.CKA_EC_PARAMS, value: EC_PARAMS[curve] }];
}

/** CKA_EC_POINT is a DER OCTET STRING around the point (SoftHSM, and PKCS#11 2.40 says so). */
function unwrapOctetString(value: Buffer): Buffer {
  if (value[0] !== 0x04) return value;
  const long = value[1] === 0x81;
  const length = long ? value[2]! : value[1]!;
  const start = long ? 3 : 2;
  return start + length === value.length ? value.subarray(start) : value;
}

/** The SubjectPublicKeyInfo of an EC (`curve`) or Ed25519 public key object. */
export function ecPublicKey(lib: pkcs11js.PKCS11, session: pkcs11js.Handle, publicKey: pkcs11js.Handle, curve: EcCurve | "ed25519"): Buffer {
  const point = readAttributes(lib, session, publicKey, [pkcs11js.CKA_EC_POINT], "EC public key").get(pkcs11js.CKA_EC_POINT);
  const raw = unwrapOctetString(point ?? Buffer.alloc(0));
  return curve === "ed25519" ? ed25519Spki(raw) : ecSpki(curve, raw, FIELD_BYTES[curve]);
}

export const EC_UNWRAP_CLASS: pkcs11js.Template = [
  { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
  { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_EC },
];

/** True when the unwrapped object is on the spec's curve. */
export function ecFits(lib: pkcs11js.PKCS11, session: pkcs11js.Handle, handle: pkcs11js.Handle, curve: EcCurve): boolean {
  const params = readAttributes(lib, session, handle, [pkcs11js.CKA_EC_PARAMS], "unwrapped key curve").get(pkcs11js.CKA_EC_PARAMS);
  return params !== undefined && params.equals(EC_PARAMS[curve]);
}

/**
 * ECDH in the HSM (CKM_ECDH1_DERIVE, CKD_NULL) with a checked peer point: the shared secret becomes a
 * readable CKK_GENERIC_SECRET session object (the output the caller asked for, like a plaintext), whose
 * value is read and which is destroyed at once. The x-coordinate, `fieldBytes` long.
 */
export async function hsmEcdh(lib: pkcs11js.PKCS11, session: pkcs11js.Handle, key: pkcs11js.Handle, point: Buffer, fieldBytes: number): Promise<Buffer> {
  const mechanism = { mechanism: pkcs11js.CKM_ECDH1_DERIVE, parameter: { type: pkcs11js.CK_PARAMS_EC_DH, kdf: pkcs11js.CKD_NULL, publicData: point } };
  const secret = await hsmCallAsync("C_DeriveKey(ECDH)", () =>
    lib.C_DeriveKeyAsync(session, mechanism, key, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
      { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_GENERIC_SECRET },
      { type: pkcs11js.CKA_VALUE_LEN, value: fieldBytes },
      { type: pkcs11js.CKA_TOKEN, value: false },
      { type: pkcs11js.CKA_SENSITIVE, value: false },
      { type: pkcs11js.CKA_EXTRACTABLE, value: true },
      { type: pkcs11js.CKA_DERIVE, value: false },
    ]),
  );
  try {
    const value = readAttributes(lib, session, secret, [pkcs11js.CKA_VALUE], "shared secret").get(pkcs11js.CKA_VALUE);
    if (value === undefined || value.length !== fieldBytes) {
      value?.fill(0);
      throw new InternalError(`C_DeriveKey(ECDH) gave ${value?.length ?? 0} bytes, not ${fieldBytes}`);
    }
    return value;
  } finally {
    destroyObject(lib, session, secret);
  }
}

/**
 * Lets an unwrapped HSM-level EC key agree (CKA_DERIVE true). The HSM root unwraps every key with
 * CKA_DERIVE false; PKCS#11 2.40 makes CKA_DERIVE modifiable, and SoftHSM 2.6.1 allows it (while
 * CKA_SENSITIVE and CKA_EXTRACTABLE stay read-only): docs/security.md, "Key agreement in the HSM".
 * A module that refuses cannot keep KEY_AGREEMENT keys at PROTECTION_LEVEL_HSM.
 */
export function hsmAllowDerive(lib: pkcs11js.PKCS11, session: pkcs11js.Handle, key: pkcs11js.Handle): void {
  try {
    hsmCall("C_SetAttributeValue(CKA_DERIVE)", () => lib.C_SetAttributeValue(session, key, [{ type: pkcs11js.CKA_DERIVE, value: true }]));
  } catch (err) {
    if (hasCode(err, pkcs11js.CKR_ATTRIBUTE_READ_ONLY, pkcs11js.CKR_TEMPLATE_INCONSISTENT, pkcs11js.CKR_ATTRIBUTE_VALUE_INVALID)) {
      throw new KmsError(
        ErrorCode.HsmUnsupported,
        "the PKCS#11 module does not let an unwrapped EC key derive: KEY_AGREEMENT keys cannot be PROTECTION_LEVEL_HSM here; use PROTECTION_LEVEL_SOFTWARE",
      );
    }
    throw err;
  }
}

/** PKCS#8 PrivateKeyInfo of an Ed25519 key is this fixed prefix followed by the 32-byte seed (RFC 8410). */
export const ED25519_PKCS8_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");

/**
 * Creates a sensitive Ed25519 session object from its seed: the module profile's path for format 1
 * HSM-level Ed25519 rows (SoftHSM 2.6 can neither wrap nor unwrap EdDSA private keys, so earlier releases
 * stored a wrapped PKCS#8 that the worker unwraps as bytes and turns into an object here).
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

// Key agreement (DeriveSharedSecret) rules: the algorithm a KEY_AGREEMENT key takes, and the peer's public
// key, checked before any ECDH. kms-api checks the peer key first (a clear refusal before the worker call);
// the worker checks it again before C_DeriveKey or node:crypto, so a caller at its socket gets no further.
import { createPublicKey } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { invalidArgument } from "@kms/errors";
import { kmsResources } from "@kms/proto";
import { KEY_SPECS } from "./key-specs";
import type { EcCurve } from "./key-specs";
import { enumName, isKnown, keySpecName } from "./names";

type KeyAgreementAlgorithm = kmsResources.KeyAgreementAlgorithm;
export const keyAgreementAlgorithmName = (v: KeyAgreementAlgorithm) => enumName(kmsResources.KeyAgreementAlgorithmSchema, v);

/** A peer public key (DER SPKI) is at most this long; the longest we take (P-384) is 120 bytes. */
export const MAX_PEER_PUBLIC_KEY_BYTES = 1024;

/** The key agreement algorithms a spec's KEY_AGREEMENT keys take (empty: the spec has no such usage). */
export function allowedKeyAgreementAlgorithms(spec: kmsResources.KeySpec): KeyAgreementAlgorithm[] {
  return [...(KEY_SPECS.get(spec)?.keyAgreementAlgorithms ?? [])];
}

/** INVALID_ARGUMENT naming key_agreement_algorithm unless it is given and suits the key. */
export function checkKeyAgreementAlgorithm(spec: kmsResources.KeySpec, algorithm: number, field = "key_agreement_algorithm"): void {
  if (algorithm === kmsResources.KeyAgreementAlgorithm.UNSPECIFIED) throw invalidArgument(field, "is required: KEY_AGREEMENT_ALGORITHM_ECDH");
  if (!isKnown(kmsResources.KeyAgreementAlgorithmSchema, algorithm)) throw invalidArgument(field, `unknown value ${algorithm}`);
  if (!allowedKeyAgreementAlgorithms(spec).includes(algorithm)) {
    throw invalidArgument(field, `${keyAgreementAlgorithmName(algorithm)} cannot be used with ${keySpecName(spec)}`);
  }
}

/**
 * The exact DER of an id-ecPublicKey SubjectPublicKeyInfo with a named curve and an uncompressed point,
 * up to the point's first byte (0x04): everything but x ‖ y, which are the field's length each.
 */
const SPKI_PREFIX: Partial<Record<EcCurve, { prefix: Buffer; fieldBytes: number }>> = {
  "P-256": { prefix: Buffer.from("3059301306072a8648ce3d020106082a8648ce3d03010703420004", "hex"), fieldBytes: 32 },
  "P-384": { prefix: Buffer.from("3076301006072a8648ce3d020106052b8104002203620004", "hex"), fieldBytes: 48 },
};

/** The curve whose SPKI prefix `der` starts with, to say which curve a wrong key is on. */
function curveOf(der: Buffer): EcCurve | undefined {
  for (const [curve, p] of Object.entries(SPKI_PREFIX)) if (der.subarray(0, p.prefix.length - 1).equals(p.prefix.subarray(0, -1))) return curve as EcCurve;
  return undefined;
}

/**
 * Checks a peer's public key for ECDH with a key on `curve` and returns it as a KeyObject. The bytes must be
 * exactly the SubjectPublicKeyInfo of an uncompressed point of the curve (no explicit parameters, no
 * compressed or hybrid point, nothing after it), so the identity (a lone 0x00) cannot be encoded; then
 * node:crypto (OpenSSL) refuses a point that is not on the curve. The structure is checked before
 * node:crypto sees the bytes: on Node 20 an SPKI holding the identity parses, and reading its details aborts
 * the process. INVALID_ARGUMENT naming `field` for anything else.
 */
export function peerPublicKey(der: Uint8Array, curve: EcCurve, field = "public_key"): KeyObject {
  const expected = SPKI_PREFIX[curve];
  if (expected === undefined) throw new RangeError(`no key agreement on ${curve}`);
  if (der.length === 0) throw invalidArgument(field, "is required: the peer's DER SubjectPublicKeyInfo");
  if (der.length > MAX_PEER_PUBLIC_KEY_BYTES) throw invalidArgument(field, `must be at most ${MAX_PEER_PUBLIC_KEY_BYTES} bytes, got ${der.length}`);
  const bytes = Buffer.from(der.buffer, der.byteOffset, der.byteLength);
  const on = curveOf(bytes);
  if (on !== undefined && on !== curve) throw invalidArgument(field, `is a ${on} key; this key agrees on ${curve} only`);
  if (bytes.length !== expected.prefix.length + 2 * expected.fieldBytes || !bytes.subarray(0, expected.prefix.length).equals(expected.prefix)) {
    throw invalidArgument(field, `must be the DER SubjectPublicKeyInfo of an uncompressed ${curve} point (named curve, 04 ‖ x ‖ y, nothing more)`);
  }
  try {
    return createPublicKey({ key: bytes, format: "der", type: "spki" });
  } catch {
    throw invalidArgument(field, `is not a point on ${curve}`);
  }
}

// RSA signature encodings (RFC 8017 §9): EMSA-PKCS1-v1_5 and EMSA-PSS, for a digest computed elsewhere.
// node:crypto signs and verifies only messages it hashes itself, so the software path and the verifier
// apply these to raw RSA (RSA_NO_PADDING); the HSM path uses CKM_RSA_PKCS and CKM_RSA_PKCS_PSS instead.
// Everything here handles public values only (digests, salts, signatures).
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { HashName } from "./signing-scheme";
import { HASH_BYTES } from "./signing-scheme";

/** DER DigestInfo prefixes (RFC 8017 §9.2, note 1). */
export const DIGEST_INFO_PREFIX: Record<"sha256" | "sha384", Buffer> = {
  sha256: Buffer.from("3031300d060960864801650304020105000420", "hex"),
  sha384: Buffer.from("3041300d060960864801650304020205000430", "hex"),
};

/** MGF1 (RFC 8017 §B.2.1). */
export function mgf1(hash: HashName, seed: Uint8Array, length: number): Buffer {
  const blocks: Buffer[] = [];
  const counter = Buffer.alloc(4);
  for (let i = 0, produced = 0; produced < length; i++, produced += HASH_BYTES[hash]) {
    counter.writeUInt32BE(i);
    blocks.push(createHash(hash).update(seed).update(counter).digest());
  }
  return Buffer.concat(blocks).subarray(0, length);
}

/** DigestInfo ‖ digest: the input of CKM_RSA_PKCS signing. */
export function digestInfo(hash: "sha256" | "sha384", digest: Uint8Array): Buffer {
  return Buffer.concat([DIGEST_INFO_PREFIX[hash], digest]);
}

/** EMSA-PKCS1-v1_5 encoding of a digest into k bytes: 00 01 FF…FF 00 DigestInfo ‖ H. */
export function emsaPkcs1v15(hash: "sha256" | "sha384", digest: Uint8Array, k: number): Buffer {
  const t = digestInfo(hash, digest);
  if (k < t.length + 11) throw new RangeError("RSA modulus too short for EMSA-PKCS1-v1_5");
  return Buffer.concat([Buffer.from([0x00, 0x01]), Buffer.alloc(k - t.length - 3, 0xff), Buffer.from([0x00]), t]);
}

function pssHash(hash: HashName, digest: Uint8Array, salt: Uint8Array): Buffer {
  return createHash(hash).update(Buffer.alloc(8)).update(digest).update(salt).digest();
}

/** EMSA-PSS-ENCODE (RFC 8017 §9.1.1) with MGF1 over the same hash; emBits = modulus bits − 1. */
export function emsaPssEncode(hash: HashName, digest: Uint8Array, emBits: number, saltBytes: number): Buffer {
  const hLen = HASH_BYTES[hash];
  const emLen = Math.ceil(emBits / 8);
  if (emLen < hLen + saltBytes + 2) throw new RangeError("RSA modulus too short for EMSA-PSS");
  const salt = randomBytes(saltBytes);
  const h = pssHash(hash, digest, salt);
  const db = Buffer.concat([Buffer.alloc(emLen - saltBytes - hLen - 2), Buffer.from([0x01]), salt]);
  const mask = mgf1(hash, h, db.length);
  for (let i = 0; i < db.length; i++) db[i]! ^= mask[i]!;
  db[0]! &= 0xff >> (8 * emLen - emBits);
  return Buffer.concat([db, h, Buffer.from([0xbc])]);
}

/** EMSA-PSS-VERIFY (RFC 8017 §9.1.2): true when `em` encodes `digest` with a salt of exactly saltBytes. */
export function emsaPssVerify(hash: HashName, digest: Uint8Array, em: Uint8Array, emBits: number, saltBytes: number): boolean {
  const hLen = HASH_BYTES[hash];
  const emLen = Math.ceil(emBits / 8);
  if (em.length !== emLen || emLen < hLen + saltBytes + 2) return false;
  if (em[emLen - 1] !== 0xbc) return false;
  const db = Buffer.from(em.subarray(0, emLen - hLen - 1));
  const h = em.subarray(emLen - hLen - 1, emLen - 1);
  const unusedBits = 8 * emLen - emBits;
  if ((db[0]! & ~(0xff >> unusedBits) & 0xff) !== 0) return false;
  const mask = mgf1(hash, h, db.length);
  for (let i = 0; i < db.length; i++) db[i]! ^= mask[i]!;
  db[0]! &= 0xff >> unusedBits;
  const psLength = emLen - hLen - saltBytes - 2;
  for (let i = 0; i < psLength; i++) if (db[i] !== 0) return false;
  if (db[psLength] !== 0x01) return false;
  const salt = db.subarray(db.length - saltBytes);
  return timingSafeEqual(pssHash(hash, digest, salt), h);
}

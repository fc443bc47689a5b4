// RSAES-OAEP decoding (RFC 8017 §7.1.2, step 3) for the HSM path of RSAES_OAEP_SHA_256.
//
// Why it is here: SoftHSM 2.6 offers CKM_RSA_PKCS_OAEP with SHA-1 only. For SHA-256 the worker asks the
// HSM for the raw RSA result (CKM_RSA_X_509: c^d mod n, the private key never leaves the HSM) and decodes
// OAEP itself. The trade-off: the padding check runs in the worker's memory rather than inside the HSM, so
// the decoded block (and the plaintext) is in the worker for a moment, as it would be after any decryption;
// and the check must not leak why it failed (Manger's attack needs only "first byte was zero or not").
// So every check below runs to the end without branching on secret data, failures are folded into one
// flag, and the caller sees one error (invalidCiphertext) whatever went wrong. JavaScript gives no hard
// constant-time guarantee (the JIT may branch), but the code has no data-dependent branch or early exit.
import { createHash, timingSafeEqual } from "node:crypto";
import { invalidArgument, invalidCiphertext } from "@kms/errors";
import { OAEP_HASHES } from "@kms/key-rules";
import type { kmsResources } from "@kms/proto";
import { wipe } from "../bytes";
import { mgf1 } from "./rsa-padding";
import type { HashName } from "./signing-scheme";
import { HASH_BYTES } from "./signing-scheme";

/** 1 when a === b, else 0, for byte values, without a branch. */
function eqByte(a: number, b: number): number {
  return (((a ^ b) - 1) >>> 31) & 1;
}

/**
 * Decodes `em` (the k-byte raw RSA output) with label `label`. Returns the message; any failure is
 * invalidCiphertext(), identical for every cause. `em` is wiped either way.
 */
export function oaepDecode(hash: HashName, em: Buffer, label: Uint8Array = Buffer.alloc(0)): Buffer {
  const hLen = HASH_BYTES[hash];
  const k = em.length;
  // A public property of the key, not of the ciphertext: fine to check up front.
  if (k < 2 * hLen + 2) {
    wipe(em);
    throw invalidCiphertext();
  }
  const lHash = createHash(hash).update(label).digest();
  const maskedSeed = em.subarray(1, 1 + hLen);
  const maskedDb = em.subarray(1 + hLen);
  const seed = mgf1(hash, maskedDb, hLen);
  for (let i = 0; i < hLen; i++) seed[i]! ^= maskedSeed[i]!;
  const db = mgf1(hash, seed, k - hLen - 1);
  for (let i = 0; i < db.length; i++) db[i]! ^= maskedDb[i]!;

  // bad collects every failure: Y ≠ 0, lHash' ≠ lHash, a byte other than 0x00 before the 0x01, no 0x01.
  let bad = 1 - eqByte(em[0]!, 0);
  bad |= timingSafeEqual(db.subarray(0, hLen), lHash) ? 0 : 1;
  let found = 0;
  let separator = 0;
  for (let i = hLen; i < db.length; i++) {
    const byte = db[i]!;
    const isOne = eqByte(byte, 1);
    const isZero = eqByte(byte, 0);
    const first = isOne & (1 - found);
    // separator = first ? i : separator, without a branch.
    separator = (separator & (first - 1)) | (i & -first);
    bad |= (1 - found) & (1 - isOne) & (1 - isZero);
    found |= isOne;
  }
  bad |= 1 - found;

  try {
    if (bad !== 0) throw invalidCiphertext();
    // The message length is the plaintext's length: public once the reply is sent.
    return Buffer.from(db.subarray(separator + 1));
  } finally {
    wipe(em, seed, db);
  }
}

export type OaepHash = "sha1" | "sha256";

/** The OAEP hash of an API algorithm; INVALID_ARGUMENT naming "algorithm" for anything else. */
export function oaepHash(algorithm: kmsResources.EncryptionAlgorithm): OaepHash {
  const hash = OAEP_HASHES[algorithm]?.name;
  if (hash !== undefined) return hash;
  throw invalidArgument("algorithm", "must be ENCRYPTION_ALGORITHM_RSAES_OAEP_SHA_256 or ENCRYPTION_ALGORITHM_RSAES_OAEP_SHA_1");
}

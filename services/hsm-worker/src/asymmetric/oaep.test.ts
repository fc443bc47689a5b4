// oaepDecode on encoded messages built by hand: a good one decodes, and every kind of defect gives the
// same invalidCiphertext error (no padding oracle), and the input is wiped either way.
import { createHash, randomBytes } from "node:crypto";
import { status } from "@grpc/grpc-js";
import { ErrorCode, INVALID_CIPHERTEXT_MESSAGE, KmsError } from "@kms/errors";
import { kmsResources } from "@kms/proto";
import { oaepDecode, oaepHash } from "./oaep";
import { mgf1 } from "./rsa-padding";

const K = 256;
const H = 32;

/** EME-OAEP encoding (RFC 8017 §7.1.1 step 2) with knobs to break it. */
function encode(message: Buffer, o: { y?: number; lHash?: Buffer; separator?: number; psByte?: number } = {}): Buffer {
  const lHash = o.lHash ?? createHash("sha256").update(Buffer.alloc(0)).digest();
  const ps = Buffer.alloc(K - message.length - 2 * H - 2, 0);
  if (o.psByte !== undefined && ps.length > 0) ps[ps.length - 1] = o.psByte;
  const db = Buffer.concat([lHash, ps, Buffer.from([o.separator ?? 0x01]), message]);
  const seed = randomBytes(H);
  const dbMask = mgf1("sha256", seed, db.length);
  for (let i = 0; i < db.length; i++) db[i]! ^= dbMask[i]!;
  const seedMask = mgf1("sha256", db, H);
  for (let i = 0; i < H; i++) seed[i]! ^= seedMask[i]!;
  return Buffer.concat([Buffer.from([o.y ?? 0]), seed, db]);
}

function failure(em: Buffer): KmsError {
  try {
    oaepDecode("sha256", em);
  } catch (err) {
    if (err instanceof KmsError) return err;
    throw err;
  }
  throw new Error("expected a failure");
}

describe("oaepDecode", () => {
  it("decodes well-formed blocks, including empty and maximal messages, and wipes its input", () => {
    for (const message of [Buffer.from("hello"), Buffer.alloc(0), randomBytes(K - 2 * H - 2)]) {
      const em = encode(message);
      expect(oaepDecode("sha256", em)).toEqual(message);
      expect(em.every((b) => b === 0)).toBe(true);
    }
  });

  it.each([
    ["first byte not zero", { y: 1 }],
    ["wrong label hash", { lHash: Buffer.alloc(32, 7) }],
    ["no 0x01 separator", { separator: 0x00 }],
    ["0x02 instead of the separator", { separator: 0x02 }],
    ["a non-zero byte in the padding", { psByte: 0x05 }],
  ])("gives the one error for: %s", (_name, breakage) => {
    const em = encode(Buffer.from("hello"), breakage);
    const err = failure(em);
    expect([err.status, err.code, err.message]).toEqual([status.INVALID_ARGUMENT, ErrorCode.InvalidCiphertext, INVALID_CIPHERTEXT_MESSAGE]);
    expect(em.every((b) => b === 0)).toBe(true);
  });

  it("refuses a block too short for the hash", () => {
    expect(failure(Buffer.alloc(2 * H + 1)).code).toBe(ErrorCode.InvalidCiphertext);
  });

  it("maps the API algorithms to their hashes", () => {
    expect(oaepHash(kmsResources.EncryptionAlgorithm.RSAES_OAEP_SHA_256)).toBe("sha256");
    expect(oaepHash(kmsResources.EncryptionAlgorithm.RSAES_OAEP_SHA_1)).toBe("sha1");
    expect(() => oaepHash(kmsResources.EncryptionAlgorithm.UNSPECIFIED)).toThrow(
      "algorithm: must be ENCRYPTION_ALGORITHM_RSAES_OAEP_SHA_256 or ENCRYPTION_ALGORITHM_RSAES_OAEP_SHA_1",
    );
  });
});

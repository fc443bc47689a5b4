import { status } from "@grpc/grpc-js";
import { ErrorCode, KmsError } from "@kms/errors";
import { kmsResources } from "@kms/proto";
import {
  allowedSigningAlgorithms,
  checkEncryptionAlgorithm,
  checkSignInput,
  checkSigningAlgorithm,
  signingHash,
  validateMessage,
  validateRandomBytes,
} from "./index";

const { KeySpec, SigningAlgorithm, EncryptionAlgorithm } = kmsResources;

function caught(fn: () => unknown): KmsError {
  try {
    fn();
  } catch (err) {
    if (err instanceof KmsError) return err;
    throw err;
  }
  throw new Error("expected a KmsError");
}

function invalid(fn: () => unknown): string {
  const e = caught(fn);
  expect([e.status, e.code]).toEqual([status.INVALID_ARGUMENT, ErrorCode.InvalidParameter]);
  return e.message;
}

describe("signing algorithms", () => {
  it("pairs each spec with its algorithms", () => {
    expect(allowedSigningAlgorithms(KeySpec.RSA_3072)).toEqual([SigningAlgorithm.RSA_PSS_SHA_256, SigningAlgorithm.RSA_PKCS1_SHA_256]);
    expect(allowedSigningAlgorithms(KeySpec.EC_P256)).toEqual([SigningAlgorithm.ECDSA_SHA_256]);
    expect(allowedSigningAlgorithms(KeySpec.EC_P256K)).toEqual([SigningAlgorithm.ECDSA_SHA_256]);
    expect(allowedSigningAlgorithms(KeySpec.EC_P384)).toEqual([SigningAlgorithm.ECDSA_SHA_384]);
    expect(allowedSigningAlgorithms(KeySpec.ED25519)).toEqual([SigningAlgorithm.ED25519]);
    expect(allowedSigningAlgorithms(KeySpec.AES_256)).toEqual([]);
  });

  it("names the algorithm and the spec when they do not match", () => {
    expect(invalid(() => checkSigningAlgorithm(KeySpec.EC_P384, SigningAlgorithm.ECDSA_SHA_256))).toBe(
      "algorithm: SIGNING_ALGORITHM_ECDSA_SHA_256 cannot be used with KEY_SPEC_EC_P384",
    );
    expect(invalid(() => checkSigningAlgorithm(KeySpec.RSA_2048, SigningAlgorithm.UNSPECIFIED))).toBe("algorithm: unknown value 0");
    expect(() => checkSigningAlgorithm(KeySpec.RSA_2048, SigningAlgorithm.RSA_PSS_SHA_256)).not.toThrow();
  });

  it("knows each algorithm's hash", () => {
    expect(signingHash(SigningAlgorithm.RSA_PKCS1_SHA_256)).toEqual({ name: "sha256", bytes: 32 });
    expect(signingHash(SigningAlgorithm.ECDSA_SHA_384)).toEqual({ name: "sha384", bytes: 48 });
    expect(signingHash(SigningAlgorithm.ED25519)).toBeUndefined();
  });
});

describe("checkSignInput", () => {
  it("checks the digest length against the algorithm's hash", () => {
    expect(() => checkSignInput(SigningAlgorithm.ECDSA_SHA_384, { case: "digest", value: Buffer.alloc(48) })).not.toThrow();
    expect(invalid(() => checkSignInput(SigningAlgorithm.ECDSA_SHA_384, { case: "digest", value: Buffer.alloc(32) }))).toBe(
      "digest: must be 48 bytes for SIGNING_ALGORITHM_ECDSA_SHA_384, got 32",
    );
  });

  it("takes 1 to 4096 message bytes, and only a message for ED25519", () => {
    expect(() => checkSignInput(SigningAlgorithm.ED25519, { case: "message", value: Buffer.alloc(4096) })).not.toThrow();
    expect(invalid(() => checkSignInput(SigningAlgorithm.RSA_PSS_SHA_256, { case: "message", value: Buffer.alloc(4097) }))).toBe(
      "message: must be 1 to 4096 bytes, got 4097",
    );
    expect(invalid(() => checkSignInput(SigningAlgorithm.ED25519, { case: "digest", value: Buffer.alloc(32) }))).toBe(
      "digest: SIGNING_ALGORITHM_ED25519 signs the message itself; give message",
    );
    expect(invalid(() => checkSignInput(SigningAlgorithm.ED25519, { case: undefined }))).toBe("message: either digest or message is required");
  });
});

describe("checkEncryptionAlgorithm", () => {
  it("returns the OAEP plaintext limit k − 2·hLen − 2", () => {
    expect(checkEncryptionAlgorithm(KeySpec.RSA_2048, EncryptionAlgorithm.RSAES_OAEP_SHA_256)).toEqual({ maxPlaintextBytes: 190 });
    expect(checkEncryptionAlgorithm(KeySpec.RSA_2048, EncryptionAlgorithm.RSAES_OAEP_SHA_1)).toEqual({ maxPlaintextBytes: 214 });
    expect(checkEncryptionAlgorithm(KeySpec.RSA_4096, EncryptionAlgorithm.RSAES_OAEP_SHA_256)).toEqual({ maxPlaintextBytes: 446 });
  });

  it("refuses unknown algorithms and non-RSA specs naming the field", () => {
    expect(invalid(() => checkEncryptionAlgorithm(KeySpec.RSA_2048, 9))).toBe("algorithm: unknown value 9");
    expect(invalid(() => checkEncryptionAlgorithm(KeySpec.EC_P256, EncryptionAlgorithm.RSAES_OAEP_SHA_256))).toBe(
      "algorithm: ENCRYPTION_ALGORITHM_RSAES_OAEP_SHA_256 cannot be used with KEY_SPEC_EC_P256",
    );
  });
});

describe("sizes", () => {
  it("bounds messages and random byte counts", () => {
    expect(invalid(() => validateMessage(Buffer.alloc(0)))).toBe("message: must be 1 to 4096 bytes, got 0");
    expect(() => validateRandomBytes(1024)).not.toThrow();
    expect(invalid(() => validateRandomBytes(0))).toBe("number_of_bytes: must be 1 to 1024, got 0");
    expect(invalid(() => validateRandomBytes(1025))).toBe("number_of_bytes: must be 1 to 1024, got 1025");
  });
});

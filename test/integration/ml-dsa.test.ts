// ML-DSA (FIPS 204) keys through the real processes: sign through the API and verify outside the service
// with @noble/post-quantum and the public key from GetPublicKey's SPKI PEM alone (its OID checked), for
// messages and external μ; AsymmetricVerify; HSM level refused naming the missing mechanism; a message
// over 4096 bytes refused naming the field.
import { createHash, randomBytes } from "node:crypto";
import { ml_dsa44, ml_dsa65, ml_dsa87 } from "@noble/post-quantum/ml-dsa.js";
import { status } from "@grpc/grpc-js";
import { crc32c } from "@kms/integrity";
import { kmsResources } from "@kms/proto";
import { errorCode, grpcError, startStack } from "../harness";
import type { Stack } from "../harness";

const { KeySpec, KeyUsage, ProtectionLevel, SigningAlgorithm } = kmsResources;
const ALGORITHM = SigningAlgorithm.ML_DSA_SHAKE_256;

jest.setTimeout(120_000);

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(async () => {
  await stack?.stop();
});

const CASES = [
  ["ML_DSA_44", KeySpec.ML_DSA_44, ml_dsa44, "2.16.840.1.101.3.4.3.17", 17],
  ["ML_DSA_65", KeySpec.ML_DSA_65, ml_dsa65, "2.16.840.1.101.3.4.3.18", 18],
  ["ML_DSA_87", KeySpec.ML_DSA_87, ml_dsa87, "2.16.840.1.101.3.4.3.19", 19],
] as const;

/** The raw public key of an SPKI PEM whose algorithm is id-ml-dsa-<arc> (SEQUENCE { SEQUENCE { OID }, BIT STRING }). */
function publicKeyFromPem(pem: string, lastArc: number, publicKeyBytes: number): Uint8Array {
  const der = Buffer.from(pem.replace(/-----[A-Z ]+-----/g, "").replace(/\s/g, ""), "base64");
  const oid = Buffer.from([0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03, lastArc]);
  expect(der.subarray(4, 4 + 2 + oid.length).equals(Buffer.concat([Buffer.from([0x30, 0x0b]), oid]))).toBe(true);
  const key = der.subarray(der.length - publicKeyBytes);
  expect(der.subarray(der.length - publicKeyBytes - 1, der.length - publicKeyBytes)[0]).toBe(0); // no unused bits
  return key;
}

describe.each(CASES)("%s", (_name, keySpec, dsa, _oid, lastArc) => {
  let keyId: string;
  let publicKey: Uint8Array;
  beforeAll(async () => {
    const { keyMetadata } = await stack.client.createKey({ keySpec, keyUsage: KeyUsage.SIGN_VERIFY, protectionLevel: ProtectionLevel.SOFTWARE });
    keyId = keyMetadata!.keyId;
    const { publicKey: pem } = await stack.client.getPublicKey({ keyId });
    expect(pem.startsWith("-----BEGIN PUBLIC KEY-----\n")).toBe(true);
    publicKey = publicKeyFromPem(pem, lastArc, dsa.lengths.publicKey!);
  });

  it("signs messages up to 4096 bytes that verify outside the service with the public key alone", async () => {
    for (const message of [Buffer.from("m"), randomBytes(4096)]) {
      const { value } = await stack.client.asymmetricSign({ keyId, algorithm: ALGORITHM, input: { case: "message", value: message } });
      expect(value.length).toBe(dsa.lengths.signature);
      expect(dsa.verify(value, message, publicKey)).toBe(true);
      expect(dsa.verify(value, Buffer.concat([message, Buffer.from("x")]), publicKey)).toBe(false);
      const verified = await stack.client.asymmetricVerify({ keyId, algorithm: ALGORITHM, input: { case: "message", value: message }, value });
      expect(verified.value).toBe(true);
      const tampered = Buffer.from(value);
      tampered[10]! ^= 1;
      expect((await stack.client.asymmetricVerify({ keyId, algorithm: ALGORITHM, input: { case: "message", value: message }, value: tampered })).value).toBe(false);
    }
  });

  it("signs an external μ, and the signature is one of the message μ stands for", async () => {
    const message = randomBytes(10_000); // longer than a message the service takes: μ is how to sign it
    // FIPS 204: tr = H(pk, 64); μ = H(tr ‖ M′, 64) with M′ = 0 ‖ |ctx| ‖ ctx ‖ M (empty context).
    const shake256 = (...parts: Uint8Array[]) => parts.reduce((h, p) => h.update(p), createHash("shake256", { outputLength: 64 })).digest();
    const tr = shake256(publicKey);
    const mu = shake256(tr, Buffer.from([0, 0]), message);
    const { value } = await stack.client.asymmetricSign({ keyId, algorithm: ALGORITHM, input: { case: "externalMu", value: mu } });
    expect(dsa.verify(value, message, publicKey)).toBe(true);
    const verified = await stack.client.asymmetricVerify({ keyId, algorithm: ALGORITHM, input: { case: "externalMu", value: mu }, value });
    expect(verified.value).toBe(true);
    // μ is caller bytes like a message: its CRC32C is checked before use (docs/integrity.md).
    const checked = await stack.client.asymmetricSign({ keyId, algorithm: ALGORITHM, input: { case: "externalMu", value: mu }, externalMuCrc32c: crc32c(mu) });
    expect([checked.verifiedExternalMuCrc32c, checked.valueCrc32c]).toEqual([true, crc32c(checked.value)]);
    const corrupted = await grpcError(
      stack.client.asymmetricVerify({ keyId, algorithm: ALGORITHM, input: { case: "externalMu", value: mu }, value, externalMuCrc32c: (crc32c(mu) ^ 1) >>> 0 }),
    );
    expect([corrupted.code, errorCode(corrupted.metadata), corrupted.details.split(":")[0]]).toEqual([status.INVALID_ARGUMENT, "Rejected.ChecksumMismatch", "external_mu_crc32c"]);
  });
});

describe("refusals", () => {
  it("HSM level: FAILED_PRECONDITION saying the module has no ML-DSA", async () => {
    for (const [, keySpec] of CASES) {
      const err = await grpcError(stack.client.createKey({ keySpec, keyUsage: KeyUsage.SIGN_VERIFY, protectionLevel: ProtectionLevel.HSM }));
      expect(err.code).toBe(status.FAILED_PRECONDITION);
      expect(errorCode(err.metadata)).toBeDefined();
      expect(err.details).toContain("has no ML-DSA");
      expect(err.details).toContain("PKCS#11 2.40");
    }
    // Without a level, an ML-DSA key is SOFTWARE (as Ed25519 on SoftHSM).
    const { keyMetadata } = await stack.client.createKey({ keySpec: KeySpec.ML_DSA_65, keyUsage: KeyUsage.SIGN_VERIFY });
    expect(keyMetadata?.protectionLevel).toBe(ProtectionLevel.SOFTWARE);
  });

  it("a 4097-byte message, a digest or a short μ, each naming the field", async () => {
    const { keyMetadata } = await stack.client.createKey({ keySpec: KeySpec.ML_DSA_44, keyUsage: KeyUsage.SIGN_VERIFY, protectionLevel: ProtectionLevel.SOFTWARE });
    const keyId = keyMetadata!.keyId;
    const cases = [
      [{ case: "message", value: Buffer.alloc(4097) }, "message: must be 1 to 4096 bytes, got 4097"],
      [{ case: "digest", value: createHash("sha256").update("x").digest() }, "digest: SIGNING_ALGORITHM_ML_DSA_SHAKE_256 signs the message itself; give message"],
      [{ case: "externalMu", value: Buffer.alloc(32) }, "external_mu: must be 64 bytes, got 32"],
    ] as const;
    for (const [input, details] of cases) {
      const err = await grpcError(stack.client.asymmetricSign({ keyId, algorithm: ALGORITHM, input }));
      expect([err.code, err.details]).toEqual([status.INVALID_ARGUMENT, details]);
    }
    const ecdsa = await grpcError(stack.client.asymmetricSign({ keyId, algorithm: SigningAlgorithm.ECDSA_SHA_256, input: { case: "message", value: Buffer.from("m") } }));
    expect(ecdsa.code).toBe(status.INVALID_ARGUMENT);
    expect(ecdsa.details).toContain("cannot be used with KEY_SPEC_ML_DSA_44");
  });
});

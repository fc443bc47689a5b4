// RSA encryption keys, HMAC keys, random bytes, wrong usages and the software root end to end through the
// real processes, for HSM and SOFTWARE keys: ciphertexts are made outside with the public key (node:crypto,
// openssl) and decrypted by the service; MACs are checked with node:crypto.
import { constants, publicEncrypt, randomBytes, verify as nodeVerify } from "node:crypto";
import { status } from "@grpc/grpc-js";
import { kmsResources } from "@kms/proto";
import { errorCode, grpcError, startStack } from "../harness";
import type { Stack } from "../harness";
import { LEVELS, derS, useAsymmetricStack } from "../asymmetric-fixtures";

const { KeySpec, KeyUsage, ProtectionLevel, SigningAlgorithm, EncryptionAlgorithm } = kmsResources;
const INVALID = "ciphertext or encryption context is invalid";
const SECP256K1_N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;

const fixture = useAsymmetricStack();
const { createKey, opensslBinary } = fixture;

const OAEP = [
  ["SHA_256", EncryptionAlgorithm.RSAES_OAEP_SHA_256, "sha256"],
  ["SHA_1", EncryptionAlgorithm.RSAES_OAEP_SHA_1, "sha1"],
] as const;

describe.each(LEVELS)("%s RSA encryption keys", (_level, protectionLevel) => {
  describe.each([
    ["RSA_2048", KeySpec.RSA_2048, 256],
    ["RSA_3072", KeySpec.RSA_3072, 384],
    ["RSA_4096", KeySpec.RSA_4096, 512],
  ] as const)("%s", (_name, spec, k) => {
    let keyId: string;
    let pem: string;
    beforeAll(async () => {
      keyId = (await createKey(spec, KeyUsage.ENCRYPT_DECRYPT, protectionLevel)).keyId;
      pem = (await fixture.stack.client.getPublicKey({ keyId })).publicKey;
    });

    it.each(OAEP)("decrypts OAEP-%s made by node:crypto, openssl and AsymmetricEncrypt", async (_n, algorithm, hash) => {
      const plaintext = randomBytes(k - 2 * (hash === "sha256" ? 32 : 20) - 2);
      const fromNode = publicEncrypt({ key: pem, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: hash }, plaintext);
      const fromOpenssl = opensslBinary(
        ["pkeyutl", "-encrypt", "-pubin", "-inkey", "pub.pem", "-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", `rsa_oaep_md:${hash}`, "-pkeyopt", `rsa_mgf1_md:${hash}`, "-in", "pt.bin", "-out", "ct.bin"],
        { "pub.pem": pem, "pt.bin": plaintext },
        "ct.bin",
      );
      const fromService = await fixture.stack.client.asymmetricEncrypt({ keyId, algorithm, plaintext });
      expect(fromService.keyId).toBe(keyId);
      for (const ciphertextBlob of [fromNode, fromOpenssl, fromService.ciphertextBlob]) {
        expect(ciphertextBlob.length).toBe(k);
        const out = await fixture.stack.client.asymmetricDecrypt({ keyId, algorithm, ciphertextBlob });
        expect(Buffer.from(out.plaintext)).toEqual(plaintext);
        expect(out.keyVersionId).toBe(fromService.keyVersionId);
      }
    });

    it("gives one error for every ciphertext that does not decrypt", async () => {
      const plaintext = Buffer.from("secret");
      const good = publicEncrypt({ key: pem, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" }, plaintext);
      const attempts: Array<[Uint8Array, kmsResources.EncryptionAlgorithm]> = [
        [good, EncryptionAlgorithm.RSAES_OAEP_SHA_1],
        [good.subarray(1), EncryptionAlgorithm.RSAES_OAEP_SHA_256],
        [Buffer.concat([good, Buffer.of(0)]), EncryptionAlgorithm.RSAES_OAEP_SHA_256],
        [Buffer.alloc(0), EncryptionAlgorithm.RSAES_OAEP_SHA_256],
        [Buffer.alloc(k, 0xff), EncryptionAlgorithm.RSAES_OAEP_SHA_256],
        [randomBytes(k).fill(0, 0, 1), EncryptionAlgorithm.RSAES_OAEP_SHA_256],
      ];
      for (const i of [0, 1, k / 2, k - 1]) {
        const tampered = Buffer.from(good);
        tampered[i]! ^= 0x01;
        attempts.push([tampered, EncryptionAlgorithm.RSAES_OAEP_SHA_256]);
      }
      for (const [ciphertextBlob, algorithm] of attempts) {
        const err = await grpcError(fixture.stack.client.asymmetricDecrypt({ keyId, algorithm, ciphertextBlob }));
        expect([err.code, errorCode(err.metadata), err.details]).toEqual([status.INVALID_ARGUMENT, "InvalidCiphertext", INVALID]);
      }
    });

    it("bounds the plaintext by the key and algorithm", async () => {
      const err = await grpcError(fixture.stack.client.asymmetricEncrypt({ keyId, algorithm: EncryptionAlgorithm.RSAES_OAEP_SHA_256, plaintext: Buffer.alloc(k - 65) }));
      expect([err.code, err.details]).toEqual([status.INVALID_ARGUMENT, `plaintext: must be 1 to ${k - 66} bytes for this key and algorithm, got ${k - 65}`]);
      const none = await grpcError(fixture.stack.client.asymmetricEncrypt({ keyId, algorithm: EncryptionAlgorithm.UNSPECIFIED, plaintext: Buffer.from("x") }));
      expect([none.code, none.details]).toEqual([status.INVALID_ARGUMENT, "algorithm: unknown value 0"]);
    });
  });
});

describe.each(LEVELS)("%s HMAC keys", (_level, protectionLevel) => {
  describe.each([
    ["HMAC_SHA256", KeySpec.HMAC_SHA256, 32],
    ["HMAC_SHA384", KeySpec.HMAC_SHA384, 48],
    ["HMAC_SHA512", KeySpec.HMAC_SHA512, 64],
  ] as const)("%s", (_name, spec, macBytes) => {
    let keyId: string;
    beforeAll(async () => {
      keyId = (await createKey(spec, KeyUsage.GENERATE_VERIFY_MAC, protectionLevel)).keyId;
    });

    it("generates full-length, deterministic MACs and verifies them", async () => {
      const message = randomBytes(4096);
      const a = await fixture.stack.client.generateMac({ keyId, message });
      const b = await fixture.stack.client.generateMac({ keyId, message });
      expect(a.mac.length).toBe(macBytes);
      expect(Buffer.from(b.mac)).toEqual(Buffer.from(a.mac));
      expect(a.keyId).toBe(keyId);
      expect(await fixture.stack.client.verifyMac({ keyId, message, mac: a.mac })).toMatchObject({ macValid: true, keyId, keyVersionId: a.keyVersionId });
      const other = await fixture.stack.client.generateMac({ keyId, message: message.subarray(1) });
      expect(Buffer.from(other.mac)).not.toEqual(Buffer.from(a.mac));
    });

    it("says mac_valid=false for a tampered, truncated or extended MAC or another message", async () => {
      const message = Buffer.from("mac me");
      const { mac } = await fixture.stack.client.generateMac({ keyId, message });
      const tampered = Buffer.from(mac);
      tampered[macBytes - 1]! ^= 0x80;
      for (const [m, candidate] of [
        [message, tampered],
        [message, mac.subarray(0, macBytes - 1)],
        [message, Buffer.concat([mac, Buffer.of(0)])],
        [message, Buffer.alloc(0)],
        [Buffer.from("mac mf"), mac],
      ] as const) {
        expect((await fixture.stack.client.verifyMac({ keyId, message: m, mac: candidate })).macValid).toBe(false);
      }
    });

    it("bounds the message at 1..4096 bytes", async () => {
      for (const message of [Buffer.alloc(0), Buffer.alloc(4097)]) {
        const err = await grpcError(fixture.stack.client.generateMac({ keyId, message }));
        expect([err.code, err.details]).toEqual([status.INVALID_ARGUMENT, `message: must be 1 to 4096 bytes, got ${message.length}`]);
      }
    });
  });
});

describe("GenerateRandom", () => {
  it.each([1, 32, 1024])("returns %i bytes", async (numberOfBytes) => {
    const { random } = await fixture.stack.client.generateRandom({ numberOfBytes });
    expect(random.length).toBe(numberOfBytes);
  });

  it("returns different bytes each time", async () => {
    const a = await fixture.stack.client.generateRandom({ numberOfBytes: 32 });
    const b = await fixture.stack.client.generateRandom({ numberOfBytes: 32 });
    expect(Buffer.from(a.random)).not.toEqual(Buffer.from(b.random));
  });

  it.each([0, -1, 1025])("refuses %i bytes", async (numberOfBytes) => {
    const err = await grpcError(fixture.stack.client.generateRandom({ numberOfBytes }));
    expect([err.code, errorCode(err.metadata), err.details]).toEqual([status.INVALID_ARGUMENT, "InvalidParameter", `number_of_bytes: must be 1 to 1024, got ${numberOfBytes}`]);
  });
});

describe("wrong usage", () => {
  let aesKey: string;
  let rsaSign: string;
  let rsaEncrypt: string;
  let ecKey: string;
  let hmacKey: string;
  beforeAll(async () => {
    aesKey = (await createKey(KeySpec.AES_256, KeyUsage.ENCRYPT_DECRYPT, ProtectionLevel.HSM)).keyId;
    rsaSign = (await createKey(KeySpec.RSA_2048, KeyUsage.SIGN_VERIFY, ProtectionLevel.HSM)).keyId;
    rsaEncrypt = (await createKey(KeySpec.RSA_2048, KeyUsage.ENCRYPT_DECRYPT, ProtectionLevel.HSM)).keyId;
    ecKey = (await createKey(KeySpec.EC_P256, KeyUsage.SIGN_VERIFY, ProtectionLevel.SOFTWARE)).keyId;
    hmacKey = (await createKey(KeySpec.HMAC_SHA256, KeyUsage.GENERATE_VERIFY_MAC, ProtectionLevel.HSM)).keyId;
  });

  const message = { case: "message" as const, value: Buffer.from("x") };
  it.each([
    ["Encrypt with an RSA key", () => fixture.stack.client.encrypt({ keyId: rsaEncrypt, plaintext: Buffer.from("x") }), () => rsaEncrypt, "KEY_SPEC_RSA_2048, KEY_USAGE_ENCRYPT_DECRYPT", "Encrypt"],
    ["AsymmetricSign with an AES key", () => fixture.stack.client.asymmetricSign({ keyId: aesKey, algorithm: SigningAlgorithm.RSA_PSS_SHA_256, input: message }), () => aesKey, "KEY_SPEC_AES_256, KEY_USAGE_ENCRYPT_DECRYPT", "AsymmetricSign"],
    ["AsymmetricSign with an RSA encryption key", () => fixture.stack.client.asymmetricSign({ keyId: rsaEncrypt, algorithm: SigningAlgorithm.RSA_PSS_SHA_256, input: message }), () => rsaEncrypt, "KEY_SPEC_RSA_2048, KEY_USAGE_ENCRYPT_DECRYPT", "AsymmetricSign"],
    ["AsymmetricDecrypt with an RSA signing key", () => fixture.stack.client.asymmetricDecrypt({ keyId: rsaSign, algorithm: EncryptionAlgorithm.RSAES_OAEP_SHA_256, ciphertextBlob: Buffer.alloc(256) }), () => rsaSign, "KEY_SPEC_RSA_2048, KEY_USAGE_SIGN_VERIFY", "AsymmetricDecrypt"],
    ["AsymmetricEncrypt with an EC key", () => fixture.stack.client.asymmetricEncrypt({ keyId: ecKey, algorithm: EncryptionAlgorithm.RSAES_OAEP_SHA_256, plaintext: Buffer.from("x") }), () => ecKey, "KEY_SPEC_EC_P256, KEY_USAGE_SIGN_VERIFY", "AsymmetricEncrypt"],
    ["GenerateMac with an EC key", () => fixture.stack.client.generateMac({ keyId: ecKey, message: Buffer.from("x") }), () => ecKey, "KEY_SPEC_EC_P256, KEY_USAGE_SIGN_VERIFY", "GenerateMac"],
    ["VerifyMac with an AES key", () => fixture.stack.client.verifyMac({ keyId: aesKey, message: Buffer.from("x"), mac: Buffer.alloc(32) }), () => aesKey, "KEY_SPEC_AES_256, KEY_USAGE_ENCRYPT_DECRYPT", "VerifyMac"],
    ["AsymmetricVerify with an HMAC key", () => fixture.stack.client.asymmetricVerify({ keyId: hmacKey, algorithm: SigningAlgorithm.ECDSA_SHA_256, input: message, value: Buffer.alloc(8) }), () => hmacKey, "KEY_SPEC_HMAC_SHA256, KEY_USAGE_GENERATE_VERIFY_MAC", "AsymmetricVerify"],
    ["GetPublicKey of an AES key", () => fixture.stack.client.getPublicKey({ keyId: aesKey }), () => aesKey, "KEY_SPEC_AES_256, KEY_USAGE_ENCRYPT_DECRYPT", "GetPublicKey"],
    ["GenerateDataKey with an HMAC key", () => fixture.stack.client.generateDataKey({ keyId: hmacKey }), () => hmacKey, "KEY_SPEC_HMAC_SHA256, KEY_USAGE_GENERATE_VERIFY_MAC", "GenerateDataKey"],
  ])("%s is FAILED_PRECONDITION Rejected.KeyUsage", async (_name, call, key, what, operation) => {
    const err = await grpcError(call());
    expect([err.code, errorCode(err.metadata), err.details]).toEqual([
      status.FAILED_PRECONDITION,
      "Rejected.KeyUsage",
      `key ${key()} (${what}) cannot be used for ${operation}`,
    ]);
  });

  it("refuses keys that are not enabled", async () => {
    await fixture.stack.client.disableKey({ keyId: ecKey });
    const err = await grpcError(fixture.stack.client.asymmetricSign({ keyId: ecKey, algorithm: SigningAlgorithm.ECDSA_SHA_256, input: message }));
    expect([err.code, errorCode(err.metadata)]).toEqual([status.FAILED_PRECONDITION, "Rejected.Disabled"]);
    await fixture.stack.client.enableKey({ keyId: ecKey });
  });
});

describe("software root key (no PKCS#11 module)", () => {
  let softStack: Stack;
  beforeAll(async () => {
    softStack = await startStack({ hsm: false });
  });
  afterAll(async () => {
    await softStack?.stop();
  });

  it("creates SOFTWARE asymmetric and HMAC keys that sign, decrypt and MAC", async () => {
    const client = softStack.client;
    const ec = (await client.createKey({ keySpec: KeySpec.EC_P256K, keyUsage: KeyUsage.SIGN_VERIFY })).keyMetadata!;
    expect(ec.protectionLevel).toBe(ProtectionLevel.SOFTWARE);
    const pem = (await client.getPublicKey({ keyId: ec.keyId })).publicKey;
    const message = Buffer.from("software root");
    const signed = await client.asymmetricSign({ keyId: ec.keyId, algorithm: SigningAlgorithm.ECDSA_SHA_256, input: { case: "message", value: message } });
    expect(nodeVerify("sha256", message, pem, signed.value)).toBe(true);
    expect(derS(signed.value) <= SECP256K1_N / 2n).toBe(true);

    const rsa = (await client.createKey({ keySpec: KeySpec.RSA_2048, keyUsage: KeyUsage.ENCRYPT_DECRYPT })).keyMetadata!;
    const rsaPem = (await client.getPublicKey({ keyId: rsa.keyId })).publicKey;
    const ct = publicEncrypt({ key: rsaPem, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" }, message);
    const out = await client.asymmetricDecrypt({ keyId: rsa.keyId, algorithm: EncryptionAlgorithm.RSAES_OAEP_SHA_256, ciphertextBlob: ct });
    expect(Buffer.from(out.plaintext)).toEqual(message);

    const hmac = (await client.createKey({ keySpec: KeySpec.HMAC_SHA384, keyUsage: KeyUsage.GENERATE_VERIFY_MAC })).keyMetadata!;
    const { mac } = await client.generateMac({ keyId: hmac.keyId, message });
    expect(mac.length).toBe(48);
    expect((await client.verifyMac({ keyId: hmac.keyId, message, mac })).macValid).toBe(true);

    expect((await client.generateRandom({ numberOfBytes: 64 })).random.length).toBe(64);
    const err = await grpcError(client.createKey({ keySpec: KeySpec.ED25519, keyUsage: KeyUsage.SIGN_VERIFY, protectionLevel: ProtectionLevel.HSM }));
    expect([err.code, errorCode(err.metadata)]).toEqual([status.FAILED_PRECONDITION, "Rejected.HsmUnsupported"]);
  });
});

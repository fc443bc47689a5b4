// Asymmetric keys, MACs and random bytes end to end through the real processes: kms-api → hsm-worker
// (SoftHSM2) → Postgres, for HSM and SOFTWARE keys. Every signature is checked outside the service with
// the `openssl` CLI and node:crypto, from GetPublicKey's PEM alone; ciphertexts are made outside with the
// public key and decrypted by the service.
import { execFileSync } from "node:child_process";
import { constants, createHash, createPublicKey, publicEncrypt, randomBytes, verify as nodeVerify } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { status } from "@grpc/grpc-js";
import { kmsResources } from "@kms/proto";
import { errorCode, grpcError, startStack } from "../harness";
import type { Stack } from "../harness";

const { KeySpec, KeyUsage, ProtectionLevel, SigningAlgorithm, EncryptionAlgorithm } = kmsResources;
const INVALID = "ciphertext or encryption context is invalid";
const SECP256K1_N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;

jest.setTimeout(120_000);

let stack: Stack;
let tmp: string;
beforeAll(async () => {
  stack = await startStack();
  tmp = mkdtempSync(path.join(os.tmpdir(), "kms-asym-it-"));
});
afterAll(async () => {
  await stack?.stop();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

const LEVELS = [
  ["HSM", ProtectionLevel.HSM],
  ["SOFTWARE", ProtectionLevel.SOFTWARE],
] as const;

async function createKey(keySpec: kmsResources.KeySpec, keyUsage: kmsResources.KeyUsage, protectionLevel: kmsResources.ProtectionLevel) {
  const { keyMetadata } = await stack.client.createKey({ keySpec, keyUsage, protectionLevel });
  expect(keyMetadata?.keySpec).toBe(keySpec);
  expect(keyMetadata?.protectionLevel).toBe(protectionLevel);
  return keyMetadata!;
}

/** Runs the openssl CLI on files in `tmp`; throws (with openssl's output) when it exits non-zero. */
function openssl(args: string[], files: Record<string, Uint8Array | string>): string {
  const dir = mkdtempSync(path.join(tmp, "ossl-"));
  for (const [name, content] of Object.entries(files)) writeFileSync(path.join(dir, name), content);
  try {
    return execFileSync("openssl", args, { cwd: dir, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function opensslBinary(args: string[], files: Record<string, Uint8Array | string>, output: string): Buffer {
  const dir = mkdtempSync(path.join(tmp, "ossl-"));
  for (const [name, content] of Object.entries(files)) writeFileSync(path.join(dir, name), content);
  try {
    execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
    return readFileSync(path.join(dir, output));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

interface SignCase {
  name: string;
  spec: kmsResources.KeySpec;
  algorithm: kmsResources.SigningAlgorithm;
  /** node:crypto hash name; null for Ed25519. */
  hash: "sha256" | "sha384" | null;
  /** Extra node:crypto verify options. */
  nodeOptions: object;
  /** openssl arguments that verify sig.bin over msg.bin with pub.pem. */
  opensslVerify: string[];
  curveField?: number;
}

const RSA_PSS = {
  nodeOptions: { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 },
  opensslVerify: ["dgst", "-sha256", "-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:32", "-sigopt", "rsa_mgf1_md:sha256", "-verify", "pub.pem", "-signature", "sig.bin", "msg.bin"],
};
const DGST_256 = ["dgst", "-sha256", "-verify", "pub.pem", "-signature", "sig.bin", "msg.bin"];

const SIGN_CASES: SignCase[] = [
  ...([
    ["RSA_2048", KeySpec.RSA_2048],
    ["RSA_3072", KeySpec.RSA_3072],
    ["RSA_4096", KeySpec.RSA_4096],
  ] as const).flatMap(([name, spec]) => [
    { name: `${name} PSS`, spec, algorithm: SigningAlgorithm.RSA_PSS_SHA_256, hash: "sha256" as const, ...RSA_PSS },
    {
      name: `${name} PKCS1`,
      spec,
      algorithm: SigningAlgorithm.RSA_PKCS1_SHA_256,
      hash: "sha256" as const,
      nodeOptions: { padding: constants.RSA_PKCS1_PADDING },
      opensslVerify: DGST_256,
    },
  ]),
  { name: "EC_P256", spec: KeySpec.EC_P256, algorithm: SigningAlgorithm.ECDSA_SHA_256, hash: "sha256", nodeOptions: { dsaEncoding: "der" }, opensslVerify: DGST_256 },
  {
    name: "EC_P384",
    spec: KeySpec.EC_P384,
    algorithm: SigningAlgorithm.ECDSA_SHA_384,
    hash: "sha384",
    nodeOptions: { dsaEncoding: "der" },
    opensslVerify: ["dgst", "-sha384", "-verify", "pub.pem", "-signature", "sig.bin", "msg.bin"],
  },
  { name: "EC_P256K", spec: KeySpec.EC_P256K, algorithm: SigningAlgorithm.ECDSA_SHA_256, hash: "sha256", nodeOptions: { dsaEncoding: "der" }, opensslVerify: DGST_256 },
  {
    name: "ED25519",
    spec: KeySpec.ED25519,
    algorithm: SigningAlgorithm.ED25519,
    hash: null,
    nodeOptions: {},
    opensslVerify: ["pkeyutl", "-verify", "-pubin", "-inkey", "pub.pem", "-rawin", "-in", "msg.bin", "-sigfile", "sig.bin"],
  },
];

/** s of a DER ECDSA signature SEQUENCE { INTEGER r, INTEGER s } (short-form lengths: our curves). */
function derS(signature: Uint8Array): bigint {
  const sig = Buffer.from(signature);
  const rLength = sig[3]!;
  const sStart = 4 + rLength;
  const sLength = sig[sStart + 1]!;
  return BigInt(`0x${sig.subarray(sStart + 2, sStart + 2 + sLength).toString("hex")}`);
}

describe.each(LEVELS)("%s signing keys", (_level, protectionLevel) => {
  // HSM-level Ed25519 is refused on SoftHSM 2.6 (see "Ed25519 keys" below).
  const cases = SIGN_CASES.filter((c) => !(protectionLevel === ProtectionLevel.HSM && c.spec === KeySpec.ED25519));
  describe.each(cases.map((c) => [c.name, c] as const))("%s", (_name, c) => {
    let keyId: string;
    let pem: string;
    let publicKey: KeyObject;

    beforeAll(async () => {
      keyId = (await createKey(c.spec, KeyUsage.SIGN_VERIFY, protectionLevel)).keyId;
      const got = await stack.client.getPublicKey({ keyId });
      expect(got.keyId).toBe(keyId);
      pem = got.publicKey;
      expect(pem).toMatch(/^-----BEGIN PUBLIC KEY-----\n[A-Za-z0-9+/=\n]+-----END PUBLIC KEY-----\n$/);
      publicKey = createPublicKey(pem);
    });

    it("signs messages that openssl and node:crypto verify from the PEM alone", async () => {
      const message = randomBytes(1000);
      const signed = await stack.client.asymmetricSign({ keyId, algorithm: c.algorithm, input: { case: "message", value: message } });
      expect(signed.keyId).toBe(keyId);
      expect(signed.keyVersionId).toMatch(/^[0-9a-f-]{36}$/);
      if (c.spec === KeySpec.ED25519) expect(signed.value.length).toBe(64);
      expect(nodeVerify(c.hash, message, { key: publicKey, ...c.nodeOptions }, signed.value)).toBe(true);
      expect(openssl(c.opensslVerify, { "pub.pem": pem, "msg.bin": message, "sig.bin": signed.value })).toMatch(/Verified OK|Signature Verified Successfully/);
      // A message that differs in one bit does not verify, outside or inside.
      const other = Buffer.from(message);
      other[0]! ^= 1;
      expect(nodeVerify(c.hash, other, { key: publicKey, ...c.nodeOptions }, signed.value)).toBe(false);
      const verdict = await stack.client.asymmetricVerify({ keyId, algorithm: c.algorithm, input: { case: "message", value: other }, value: signed.value });
      expect(verdict.value).toBe(false);
      const good = await stack.client.asymmetricVerify({ keyId, algorithm: c.algorithm, input: { case: "message", value: message }, value: signed.value });
      expect(good).toMatchObject({ value: true, keyId, keyVersionId: signed.keyVersionId });
    });

    if (c.hash !== null) {
      const hash = c.hash;
      it("signs a digest exactly as it signs the message behind it", async () => {
        const message = Buffer.from("digest input");
        const digest = createHash(hash).update(message).digest();
        const signed = await stack.client.asymmetricSign({ keyId, algorithm: c.algorithm, input: { case: "digest", value: digest } });
        expect(nodeVerify(hash, message, { key: publicKey, ...c.nodeOptions }, signed.value)).toBe(true);
        const verdict = await stack.client.asymmetricVerify({ keyId, algorithm: c.algorithm, input: { case: "digest", value: digest }, value: signed.value });
        expect(verdict.value).toBe(true);
        const err = await grpcError(stack.client.asymmetricSign({ keyId, algorithm: c.algorithm, input: { case: "digest", value: digest.subarray(1) } }));
        expect([err.code, errorCode(err.metadata)]).toEqual([status.INVALID_ARGUMENT, "InvalidParameter"]);
        expect(err.details).toMatch(/^digest: must be \d+ bytes for SIGNING_ALGORITHM_/);
      });
    } else {
      it("takes only a message", async () => {
        const err = await grpcError(stack.client.asymmetricSign({ keyId, algorithm: c.algorithm, input: { case: "digest", value: Buffer.alloc(32) } }));
        expect([err.code, err.details]).toEqual([status.INVALID_ARGUMENT, "digest: SIGNING_ALGORITHM_ED25519 signs the message itself; give message"]);
      });
    }

    it("says false (not an error) for a tampered or malformed signature", async () => {
      const message = Buffer.from("tamper");
      const signed = await stack.client.asymmetricSign({ keyId, algorithm: c.algorithm, input: { case: "message", value: message } });
      const tampered = Buffer.from(signed.value);
      tampered[tampered.length - 1]! ^= 0x01;
      for (const value of [tampered, signed.value.subarray(1), Buffer.alloc(0), randomBytes(signed.value.length)]) {
        const verdict = await stack.client.asymmetricVerify({ keyId, algorithm: c.algorithm, input: { case: "message", value: message }, value });
        expect(verdict.value).toBe(false);
      }
    });

    if (c.spec === KeySpec.EC_P256K) {
      it("makes only low-S signatures", async () => {
        for (let i = 0; i < 16; i++) {
          const signed = await stack.client.asymmetricSign({ keyId, algorithm: c.algorithm, input: { case: "message", value: Buffer.from(`m${i}`) } });
          expect(derS(signed.value) <= SECP256K1_N / 2n).toBe(true);
        }
      });
    }
  });
});

describe("Ed25519 keys on a PKCS#11 module that cannot wrap EdDSA keys (SoftHSM 2.6)", () => {
  // Such a key could only be kept in worker memory, so it is no HSM key: refused at HSM level, and
  // SOFTWARE when the caller leaves the level to the service.
  it("are refused at PROTECTION_LEVEL_HSM, generated or to be imported, and default to SOFTWARE", async () => {
    for (const origin of [kmsResources.Origin.KMS, kmsResources.Origin.EXTERNAL]) {
      const err = await grpcError(stack.client.createKey({ keySpec: KeySpec.ED25519, keyUsage: KeyUsage.SIGN_VERIFY, protectionLevel: ProtectionLevel.HSM, origin }));
      expect([err.code, errorCode(err.metadata), err.details]).toEqual([
        status.FAILED_PRECONDITION,
        "Rejected.HsmUnsupported",
        origin === kmsResources.Origin.KMS
          ? "KEY_SPEC_ED25519 cannot be PROTECTION_LEVEL_HSM here: the PKCS#11 module cannot wrap its private keys, so they could not stay in the HSM; use PROTECTION_LEVEL_SOFTWARE"
          : "KEY_SPEC_ED25519 keys cannot be PROTECTION_LEVEL_HSM: the PKCS#11 module cannot wrap their private keys; use PROTECTION_LEVEL_SOFTWARE",
      ]);
    }
    const { keyMetadata } = await stack.client.createKey({ keySpec: KeySpec.ED25519, keyUsage: KeyUsage.SIGN_VERIFY });
    expect(keyMetadata?.protectionLevel).toBe(ProtectionLevel.SOFTWARE);
    const { keyMetadata: aes } = await stack.client.createKey({});
    expect(aes?.protectionLevel).toBe(ProtectionLevel.HSM);
  });
});

describe("algorithm and spec", () => {
  let ecKey: string;
  let rsaKey: string;
  beforeAll(async () => {
    ecKey = (await createKey(KeySpec.EC_P256, KeyUsage.SIGN_VERIFY, ProtectionLevel.HSM)).keyId;
    rsaKey = (await createKey(KeySpec.RSA_2048, KeyUsage.SIGN_VERIFY, ProtectionLevel.SOFTWARE)).keyId;
  });

  it.each([
    ["ECDSA_SHA_384 with EC_P256", () => ecKey, SigningAlgorithm.ECDSA_SHA_384, "algorithm: SIGNING_ALGORITHM_ECDSA_SHA_384 cannot be used with KEY_SPEC_EC_P256"],
    ["RSA_PSS with EC_P256", () => ecKey, SigningAlgorithm.RSA_PSS_SHA_256, "algorithm: SIGNING_ALGORITHM_RSA_PSS_SHA_256 cannot be used with KEY_SPEC_EC_P256"],
    ["ED25519 with RSA_2048", () => rsaKey, SigningAlgorithm.ED25519, "algorithm: SIGNING_ALGORITHM_ED25519 cannot be used with KEY_SPEC_RSA_2048"],
    ["no algorithm", () => rsaKey, SigningAlgorithm.UNSPECIFIED, "algorithm: unknown value 0"],
  ])("refuses %s with INVALID_ARGUMENT", async (_name, key, algorithm, message) => {
    const input = { case: "message" as const, value: Buffer.from("x") };
    for (const call of [
      () => stack.client.asymmetricSign({ keyId: key(), algorithm, input }),
      () => stack.client.asymmetricVerify({ keyId: key(), algorithm, input, value: Buffer.alloc(64) }),
    ]) {
      const err = await grpcError(call());
      expect([err.code, errorCode(err.metadata), err.details]).toEqual([status.INVALID_ARGUMENT, "InvalidParameter", message]);
    }
  });

  it("bounds the message at 1..4096 bytes and requires an input", async () => {
    const big = await grpcError(stack.client.asymmetricSign({ keyId: ecKey, algorithm: SigningAlgorithm.ECDSA_SHA_256, input: { case: "message", value: Buffer.alloc(4097) } }));
    expect([big.code, big.details]).toEqual([status.INVALID_ARGUMENT, "message: must be 1 to 4096 bytes, got 4097"]);
    const none = await grpcError(stack.client.asymmetricSign({ keyId: ecKey, algorithm: SigningAlgorithm.ECDSA_SHA_256 }));
    expect([none.code, none.details]).toEqual([status.INVALID_ARGUMENT, "message: either digest or message is required"]);
    const max = await stack.client.asymmetricSign({ keyId: ecKey, algorithm: SigningAlgorithm.ECDSA_SHA_256, input: { case: "message", value: Buffer.alloc(4096) } });
    expect(max.value.length).toBeGreaterThan(64);
  });

  it("selects versions by key_version_id; empty means the primary", async () => {
    const first = (await stack.client.getPublicKey({ keyId: ecKey })).keyVersionId;
    const rotated = await stack.client.createKeyVersion({ keyId: ecKey });
    const second = rotated.keyVersion!.keyVersionId;
    expect(second).not.toBe(first);
    const message = Buffer.from("versions");
    const old = await stack.client.asymmetricSign({ keyId: ecKey, keyVersionId: first, algorithm: SigningAlgorithm.ECDSA_SHA_256, input: { case: "message", value: message } });
    expect(old.keyVersionId).toBe(first);
    const oldPem = (await stack.client.getPublicKey({ keyId: ecKey, keyVersionId: first })).publicKey;
    const newPem = (await stack.client.getPublicKey({ keyId: ecKey })).publicKey;
    expect(newPem).not.toBe(oldPem);
    expect(nodeVerify("sha256", message, oldPem, old.value)).toBe(true);
    expect(nodeVerify("sha256", message, newPem, old.value)).toBe(false);
    const byPrimary = await stack.client.asymmetricVerify({ keyId: ecKey, algorithm: SigningAlgorithm.ECDSA_SHA_256, input: { case: "message", value: message }, value: old.value });
    expect(byPrimary).toMatchObject({ value: false, keyVersionId: second });
    const byFirst = await stack.client.asymmetricVerify({ keyId: ecKey, keyVersionId: first, algorithm: SigningAlgorithm.ECDSA_SHA_256, input: { case: "message", value: message }, value: old.value });
    expect(byFirst.value).toBe(true);

    const unknown = "00000000-0000-4000-8000-000000000000";
    const err = await grpcError(stack.client.getPublicKey({ keyId: ecKey, keyVersionId: unknown }));
    expect([err.code, errorCode(err.metadata), err.details]).toEqual([status.NOT_FOUND, "Forbidden.KeyVersionNotFound", `key version ${unknown} of key ${ecKey} not found`]);
    const bad = await grpcError(stack.client.getPublicKey({ keyId: ecKey, keyVersionId: "v1" }));
    expect([bad.code, bad.details]).toEqual([status.INVALID_ARGUMENT, "key_version_id: must be a UUID"]);
  });
});

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
      pem = (await stack.client.getPublicKey({ keyId })).publicKey;
    });

    it.each(OAEP)("decrypts OAEP-%s made by node:crypto, openssl and AsymmetricEncrypt", async (_n, algorithm, hash) => {
      const plaintext = randomBytes(k - 2 * (hash === "sha256" ? 32 : 20) - 2);
      const fromNode = publicEncrypt({ key: pem, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: hash }, plaintext);
      const fromOpenssl = opensslBinary(
        ["pkeyutl", "-encrypt", "-pubin", "-inkey", "pub.pem", "-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", `rsa_oaep_md:${hash}`, "-pkeyopt", `rsa_mgf1_md:${hash}`, "-in", "pt.bin", "-out", "ct.bin"],
        { "pub.pem": pem, "pt.bin": plaintext },
        "ct.bin",
      );
      const fromService = await stack.client.asymmetricEncrypt({ keyId, algorithm, plaintext });
      expect(fromService.keyId).toBe(keyId);
      for (const ciphertextBlob of [fromNode, fromOpenssl, fromService.ciphertextBlob]) {
        expect(ciphertextBlob.length).toBe(k);
        const out = await stack.client.asymmetricDecrypt({ keyId, algorithm, ciphertextBlob });
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
        const err = await grpcError(stack.client.asymmetricDecrypt({ keyId, algorithm, ciphertextBlob }));
        expect([err.code, errorCode(err.metadata), err.details]).toEqual([status.INVALID_ARGUMENT, "InvalidCiphertext", INVALID]);
      }
    });

    it("bounds the plaintext by the key and algorithm", async () => {
      const err = await grpcError(stack.client.asymmetricEncrypt({ keyId, algorithm: EncryptionAlgorithm.RSAES_OAEP_SHA_256, plaintext: Buffer.alloc(k - 65) }));
      expect([err.code, err.details]).toEqual([status.INVALID_ARGUMENT, `plaintext: must be 1 to ${k - 66} bytes for this key and algorithm, got ${k - 65}`]);
      const none = await grpcError(stack.client.asymmetricEncrypt({ keyId, algorithm: EncryptionAlgorithm.UNSPECIFIED, plaintext: Buffer.from("x") }));
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
      const a = await stack.client.generateMac({ keyId, message });
      const b = await stack.client.generateMac({ keyId, message });
      expect(a.mac.length).toBe(macBytes);
      expect(Buffer.from(b.mac)).toEqual(Buffer.from(a.mac));
      expect(a.keyId).toBe(keyId);
      expect(await stack.client.verifyMac({ keyId, message, mac: a.mac })).toMatchObject({ macValid: true, keyId, keyVersionId: a.keyVersionId });
      const other = await stack.client.generateMac({ keyId, message: message.subarray(1) });
      expect(Buffer.from(other.mac)).not.toEqual(Buffer.from(a.mac));
    });

    it("says mac_valid=false for a tampered, truncated or extended MAC or another message", async () => {
      const message = Buffer.from("mac me");
      const { mac } = await stack.client.generateMac({ keyId, message });
      const tampered = Buffer.from(mac);
      tampered[macBytes - 1]! ^= 0x80;
      for (const [m, candidate] of [
        [message, tampered],
        [message, mac.subarray(0, macBytes - 1)],
        [message, Buffer.concat([mac, Buffer.of(0)])],
        [message, Buffer.alloc(0)],
        [Buffer.from("mac mf"), mac],
      ] as const) {
        expect((await stack.client.verifyMac({ keyId, message: m, mac: candidate })).macValid).toBe(false);
      }
    });

    it("bounds the message at 1..4096 bytes", async () => {
      for (const message of [Buffer.alloc(0), Buffer.alloc(4097)]) {
        const err = await grpcError(stack.client.generateMac({ keyId, message }));
        expect([err.code, err.details]).toEqual([status.INVALID_ARGUMENT, `message: must be 1 to 4096 bytes, got ${message.length}`]);
      }
    });
  });
});

describe("GenerateRandom", () => {
  it.each([1, 32, 1024])("returns %i bytes", async (numberOfBytes) => {
    const { random } = await stack.client.generateRandom({ numberOfBytes });
    expect(random.length).toBe(numberOfBytes);
  });

  it("returns different bytes each time", async () => {
    const a = await stack.client.generateRandom({ numberOfBytes: 32 });
    const b = await stack.client.generateRandom({ numberOfBytes: 32 });
    expect(Buffer.from(a.random)).not.toEqual(Buffer.from(b.random));
  });

  it.each([0, -1, 1025])("refuses %i bytes", async (numberOfBytes) => {
    const err = await grpcError(stack.client.generateRandom({ numberOfBytes }));
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
    ["Encrypt with an RSA key", () => stack.client.encrypt({ keyId: rsaEncrypt, plaintext: Buffer.from("x") }), () => rsaEncrypt, "KEY_SPEC_RSA_2048, KEY_USAGE_ENCRYPT_DECRYPT", "Encrypt"],
    ["AsymmetricSign with an AES key", () => stack.client.asymmetricSign({ keyId: aesKey, algorithm: SigningAlgorithm.RSA_PSS_SHA_256, input: message }), () => aesKey, "KEY_SPEC_AES_256, KEY_USAGE_ENCRYPT_DECRYPT", "AsymmetricSign"],
    ["AsymmetricSign with an RSA encryption key", () => stack.client.asymmetricSign({ keyId: rsaEncrypt, algorithm: SigningAlgorithm.RSA_PSS_SHA_256, input: message }), () => rsaEncrypt, "KEY_SPEC_RSA_2048, KEY_USAGE_ENCRYPT_DECRYPT", "AsymmetricSign"],
    ["AsymmetricDecrypt with an RSA signing key", () => stack.client.asymmetricDecrypt({ keyId: rsaSign, algorithm: EncryptionAlgorithm.RSAES_OAEP_SHA_256, ciphertextBlob: Buffer.alloc(256) }), () => rsaSign, "KEY_SPEC_RSA_2048, KEY_USAGE_SIGN_VERIFY", "AsymmetricDecrypt"],
    ["AsymmetricEncrypt with an EC key", () => stack.client.asymmetricEncrypt({ keyId: ecKey, algorithm: EncryptionAlgorithm.RSAES_OAEP_SHA_256, plaintext: Buffer.from("x") }), () => ecKey, "KEY_SPEC_EC_P256, KEY_USAGE_SIGN_VERIFY", "AsymmetricEncrypt"],
    ["GenerateMac with an EC key", () => stack.client.generateMac({ keyId: ecKey, message: Buffer.from("x") }), () => ecKey, "KEY_SPEC_EC_P256, KEY_USAGE_SIGN_VERIFY", "GenerateMac"],
    ["VerifyMac with an AES key", () => stack.client.verifyMac({ keyId: aesKey, message: Buffer.from("x"), mac: Buffer.alloc(32) }), () => aesKey, "KEY_SPEC_AES_256, KEY_USAGE_ENCRYPT_DECRYPT", "VerifyMac"],
    ["AsymmetricVerify with an HMAC key", () => stack.client.asymmetricVerify({ keyId: hmacKey, algorithm: SigningAlgorithm.ECDSA_SHA_256, input: message, value: Buffer.alloc(8) }), () => hmacKey, "KEY_SPEC_HMAC_SHA256, KEY_USAGE_GENERATE_VERIFY_MAC", "AsymmetricVerify"],
    ["GetPublicKey of an AES key", () => stack.client.getPublicKey({ keyId: aesKey }), () => aesKey, "KEY_SPEC_AES_256, KEY_USAGE_ENCRYPT_DECRYPT", "GetPublicKey"],
    ["GenerateDataKey with an HMAC key", () => stack.client.generateDataKey({ keyId: hmacKey }), () => hmacKey, "KEY_SPEC_HMAC_SHA256, KEY_USAGE_GENERATE_VERIFY_MAC", "GenerateDataKey"],
  ])("%s is FAILED_PRECONDITION Rejected.KeyUsage", async (_name, call, key, what, operation) => {
    const err = await grpcError(call());
    expect([err.code, errorCode(err.metadata), err.details]).toEqual([
      status.FAILED_PRECONDITION,
      "Rejected.KeyUsage",
      `key ${key()} (${what}) cannot be used for ${operation}`,
    ]);
  });

  it("refuses keys that are not enabled", async () => {
    await stack.client.disableKey({ keyId: ecKey });
    const err = await grpcError(stack.client.asymmetricSign({ keyId: ecKey, algorithm: SigningAlgorithm.ECDSA_SHA_256, input: message }));
    expect([err.code, errorCode(err.metadata)]).toEqual([status.FAILED_PRECONDITION, "Rejected.Disabled"]);
    await stack.client.enableKey({ keyId: ecKey });
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

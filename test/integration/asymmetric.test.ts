// Asymmetric signing keys end to end through the real processes: kms-api → hsm-worker (SoftHSM2) →
// Postgres, for HSM and SOFTWARE keys. Every signature is checked outside the service with the `openssl`
// CLI and node:crypto, from GetPublicKey's PEM alone (asymmetric-encryption.test.ts: encryption, MACs).
import { constants, createHash, createPublicKey, randomBytes, verify as nodeVerify } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { status } from "@grpc/grpc-js";
import { kmsResources } from "@kms/proto";
import { errorCode, grpcError } from "../harness";
import { LEVELS, derS, useAsymmetricStack } from "../asymmetric-fixtures";

const { KeySpec, KeyUsage, ProtectionLevel, SigningAlgorithm } = kmsResources;
const SECP256K1_N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;

const fixture = useAsymmetricStack();
const { createKey, openssl } = fixture;


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


describe.each(LEVELS)("%s signing keys", (_level, protectionLevel) => {
  // HSM-level Ed25519 is refused on SoftHSM 2.6 (see "Ed25519 keys" below).
  const cases = SIGN_CASES.filter((c) => !(protectionLevel === ProtectionLevel.HSM && c.spec === KeySpec.ED25519));
  describe.each(cases.map((c) => [c.name, c] as const))("%s", (_name, c) => {
    let keyId: string;
    let pem: string;
    let publicKey: KeyObject;

    beforeAll(async () => {
      keyId = (await createKey(c.spec, KeyUsage.SIGN_VERIFY, protectionLevel)).keyId;
      const got = await fixture.stack.client.getPublicKey({ keyId });
      expect(got.keyId).toBe(keyId);
      pem = got.publicKey;
      expect(pem).toMatch(/^-----BEGIN PUBLIC KEY-----\n[A-Za-z0-9+/=\n]+-----END PUBLIC KEY-----\n$/);
      publicKey = createPublicKey(pem);
    });

    it("signs messages that openssl and node:crypto verify from the PEM alone", async () => {
      const message = randomBytes(1000);
      const signed = await fixture.stack.client.asymmetricSign({ keyId, algorithm: c.algorithm, input: { case: "message", value: message } });
      expect(signed.keyId).toBe(keyId);
      expect(signed.keyVersionId).toMatch(/^[0-9a-f-]{36}$/);
      if (c.spec === KeySpec.ED25519) expect(signed.value.length).toBe(64);
      expect(nodeVerify(c.hash, message, { key: publicKey, ...c.nodeOptions }, signed.value)).toBe(true);
      expect(openssl(c.opensslVerify, { "pub.pem": pem, "msg.bin": message, "sig.bin": signed.value })).toMatch(/Verified OK|Signature Verified Successfully/);
      // A message that differs in one bit does not verify, outside or inside.
      const other = Buffer.from(message);
      other[0]! ^= 1;
      expect(nodeVerify(c.hash, other, { key: publicKey, ...c.nodeOptions }, signed.value)).toBe(false);
      const verdict = await fixture.stack.client.asymmetricVerify({ keyId, algorithm: c.algorithm, input: { case: "message", value: other }, value: signed.value });
      expect(verdict.value).toBe(false);
      const good = await fixture.stack.client.asymmetricVerify({ keyId, algorithm: c.algorithm, input: { case: "message", value: message }, value: signed.value });
      expect(good).toMatchObject({ value: true, keyId, keyVersionId: signed.keyVersionId });
    });

    if (c.hash !== null) {
      const hash = c.hash;
      it("signs a digest exactly as it signs the message behind it", async () => {
        const message = Buffer.from("digest input");
        const digest = createHash(hash).update(message).digest();
        const signed = await fixture.stack.client.asymmetricSign({ keyId, algorithm: c.algorithm, input: { case: "digest", value: digest } });
        expect(nodeVerify(hash, message, { key: publicKey, ...c.nodeOptions }, signed.value)).toBe(true);
        const verdict = await fixture.stack.client.asymmetricVerify({ keyId, algorithm: c.algorithm, input: { case: "digest", value: digest }, value: signed.value });
        expect(verdict.value).toBe(true);
        const err = await grpcError(fixture.stack.client.asymmetricSign({ keyId, algorithm: c.algorithm, input: { case: "digest", value: digest.subarray(1) } }));
        expect([err.code, errorCode(err.metadata)]).toEqual([status.INVALID_ARGUMENT, "InvalidParameter"]);
        expect(err.details).toMatch(/^digest: must be \d+ bytes for SIGNING_ALGORITHM_/);
      });
    } else {
      it("takes only a message", async () => {
        const err = await grpcError(fixture.stack.client.asymmetricSign({ keyId, algorithm: c.algorithm, input: { case: "digest", value: Buffer.alloc(32) } }));
        expect([err.code, err.details]).toEqual([status.INVALID_ARGUMENT, "digest: SIGNING_ALGORITHM_ED25519 signs the message itself; give message"]);
      });
    }

    it("says false (not an error) for a tampered or malformed signature", async () => {
      const message = Buffer.from("tamper");
      const signed = await fixture.stack.client.asymmetricSign({ keyId, algorithm: c.algorithm, input: { case: "message", value: message } });
      const tampered = Buffer.from(signed.value);
      tampered[tampered.length - 1]! ^= 0x01;
      for (const value of [tampered, signed.value.subarray(1), Buffer.alloc(0), randomBytes(signed.value.length)]) {
        const verdict = await fixture.stack.client.asymmetricVerify({ keyId, algorithm: c.algorithm, input: { case: "message", value: message }, value });
        expect(verdict.value).toBe(false);
      }
    });

    if (c.spec === KeySpec.EC_P256K) {
      it("makes only low-S signatures", async () => {
        for (let i = 0; i < 16; i++) {
          const signed = await fixture.stack.client.asymmetricSign({ keyId, algorithm: c.algorithm, input: { case: "message", value: Buffer.from(`m${i}`) } });
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
      const err = await grpcError(fixture.stack.client.createKey({ keySpec: KeySpec.ED25519, keyUsage: KeyUsage.SIGN_VERIFY, protectionLevel: ProtectionLevel.HSM, origin }));
      expect([err.code, errorCode(err.metadata), err.details]).toEqual([
        status.FAILED_PRECONDITION,
        "Rejected.HsmUnsupported",
        origin === kmsResources.Origin.KMS
          ? "KEY_SPEC_ED25519 cannot be PROTECTION_LEVEL_HSM here: the PKCS#11 module cannot wrap its private keys, so they could not stay in the HSM; use PROTECTION_LEVEL_SOFTWARE"
          : "KEY_SPEC_ED25519 keys cannot be PROTECTION_LEVEL_HSM: the PKCS#11 module cannot wrap their private keys; use PROTECTION_LEVEL_SOFTWARE",
      ]);
    }
    const { keyMetadata } = await fixture.stack.client.createKey({ keySpec: KeySpec.ED25519, keyUsage: KeyUsage.SIGN_VERIFY });
    expect(keyMetadata?.protectionLevel).toBe(ProtectionLevel.SOFTWARE);
    const { keyMetadata: aes } = await fixture.stack.client.createKey({});
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
      () => fixture.stack.client.asymmetricSign({ keyId: key(), algorithm, input }),
      () => fixture.stack.client.asymmetricVerify({ keyId: key(), algorithm, input, value: Buffer.alloc(64) }),
    ]) {
      const err = await grpcError(call());
      expect([err.code, errorCode(err.metadata), err.details]).toEqual([status.INVALID_ARGUMENT, "InvalidParameter", message]);
    }
  });

  it("bounds the message at 1..4096 bytes and requires an input", async () => {
    const big = await grpcError(fixture.stack.client.asymmetricSign({ keyId: ecKey, algorithm: SigningAlgorithm.ECDSA_SHA_256, input: { case: "message", value: Buffer.alloc(4097) } }));
    expect([big.code, big.details]).toEqual([status.INVALID_ARGUMENT, "message: must be 1 to 4096 bytes, got 4097"]);
    const none = await grpcError(fixture.stack.client.asymmetricSign({ keyId: ecKey, algorithm: SigningAlgorithm.ECDSA_SHA_256 }));
    expect([none.code, none.details]).toEqual([status.INVALID_ARGUMENT, "message: either digest or message is required"]);
    const max = await fixture.stack.client.asymmetricSign({ keyId: ecKey, algorithm: SigningAlgorithm.ECDSA_SHA_256, input: { case: "message", value: Buffer.alloc(4096) } });
    expect(max.value.length).toBeGreaterThan(64);
  });

  it("selects versions by key_version_id; empty means the primary", async () => {
    const first = (await fixture.stack.client.getPublicKey({ keyId: ecKey })).keyVersionId;
    const rotated = await fixture.stack.client.createKeyVersion({ keyId: ecKey });
    const second = rotated.keyVersion!.keyVersionId;
    expect(second).not.toBe(first);
    const message = Buffer.from("versions");
    const old = await fixture.stack.client.asymmetricSign({ keyId: ecKey, keyVersionId: first, algorithm: SigningAlgorithm.ECDSA_SHA_256, input: { case: "message", value: message } });
    expect(old.keyVersionId).toBe(first);
    const oldPem = (await fixture.stack.client.getPublicKey({ keyId: ecKey, keyVersionId: first })).publicKey;
    const newPem = (await fixture.stack.client.getPublicKey({ keyId: ecKey })).publicKey;
    expect(newPem).not.toBe(oldPem);
    expect(nodeVerify("sha256", message, oldPem, old.value)).toBe(true);
    expect(nodeVerify("sha256", message, newPem, old.value)).toBe(false);
    const byPrimary = await fixture.stack.client.asymmetricVerify({ keyId: ecKey, algorithm: SigningAlgorithm.ECDSA_SHA_256, input: { case: "message", value: message }, value: old.value });
    expect(byPrimary).toMatchObject({ value: false, keyVersionId: second });
    const byFirst = await fixture.stack.client.asymmetricVerify({ keyId: ecKey, keyVersionId: first, algorithm: SigningAlgorithm.ECDSA_SHA_256, input: { case: "message", value: message }, value: old.value });
    expect(byFirst.value).toBe(true);

    const unknown = "00000000-0000-4000-8000-000000000000";
    const err = await grpcError(fixture.stack.client.getPublicKey({ keyId: ecKey, keyVersionId: unknown }));
    expect([err.code, errorCode(err.metadata), err.details]).toEqual([status.NOT_FOUND, "Forbidden.KeyVersionNotFound", `key version ${unknown} of key ${ecKey} not found`]);
    const bad = await grpcError(fixture.stack.client.getPublicKey({ keyId: ecKey, keyVersionId: "v1" }));
    expect([bad.code, bad.details]).toEqual([status.INVALID_ARGUMENT, "key_version_id: must be a UUID"]);
  });
});

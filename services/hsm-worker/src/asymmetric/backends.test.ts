// Asymmetric and HMAC keys through both backends (PKCS#11 at HSM and SOFTWARE level, software root),
// checked against node:crypto with nothing but the public key the backend returned.
import { constants, createHash, createPublicKey, publicEncrypt, verify as nodeVerify } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { create } from "@bufbuild/protobuf";
import { status } from "@grpc/grpc-js";
import { ErrorCode, INVALID_CIPHERTEXT_MESSAGE, KmsError } from "@kms/errors";
import { kmsResources } from "@kms/proto";
import { hsm } from "@kms/proto/internal";
import type { Backend } from "../backend";
import { HsmBackend } from "../pkcs11/hsm-backend";
import { keyFamily } from "../key-spec";
import { generateSoftwareMaterial } from "../software/asymmetric";
import { SoftwareRootBackend } from "../software/software-root";
import { createTestToken } from "../testing/softhsm-token";
import type { TestToken } from "../testing/softhsm-token";
import { wireBackend } from "../testing/wire-backend";
import type { WireBackend } from "../testing/wire-backend";

jest.setTimeout(120_000);

const { KeySpec, ProtectionLevel, SigningAlgorithm, EncryptionAlgorithm } = kmsResources;

let token: TestToken;
let hsmBackend: WireBackend<HsmBackend>;
/** The same token with KMS_PKCS11_CALL_MODE=inline: short calls on this thread, not the thread pool. */
let inlineBackend: WireBackend<HsmBackend>;
let softwareRoot: WireBackend<SoftwareRootBackend>;
let dataDir: string;

beforeAll(async () => {
  token = createTestToken("backends-asym-test");
  hsmBackend = wireBackend(await HsmBackend.open({ module: token.module, tokenLabel: token.label, pin: token.pin, poolSize: 2, rootKeyLabel: "root", keyCacheSize: 4 }));
  inlineBackend = wireBackend(await HsmBackend.open({ module: token.module, tokenLabel: token.label, pin: token.pin, poolSize: 2, rootKeyLabel: "root", keyCacheSize: 4, callMode: "inline" }));
  dataDir = mkdtempSync(path.join(os.tmpdir(), "backends-asym-"));
  softwareRoot = wireBackend(SoftwareRootBackend.open(path.join(dataDir, "data"), 4));
});

afterAll(async () => {
  await inlineBackend.close();
  await hsmBackend.close();
  token.remove();
  rmSync(dataDir, { recursive: true, force: true });
});

async function rejection(promise: Promise<unknown>): Promise<KmsError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof KmsError) return err;
    throw err;
  }
  throw new Error("expected a rejection");
}

const BACKENDS: Array<[string, () => WireBackend<Backend>, kmsResources.ProtectionLevel]> = [
  ["PKCS#11, HSM level", () => hsmBackend, ProtectionLevel.HSM],
  ["PKCS#11, SOFTWARE level", () => hsmBackend, ProtectionLevel.SOFTWARE],
  ["PKCS#11 inline calls, HSM level", () => inlineBackend, ProtectionLevel.HSM],
  ["software root", () => softwareRoot, ProtectionLevel.SOFTWARE],
];

let nextId = 0;
async function newKey(backend: WireBackend<Backend>, keySpec: kmsResources.KeySpec, protectionLevel: kmsResources.ProtectionLevel) {
  const id = `kv-${nextId++}`;
  const generated = await backend.generateKeyMaterial(keySpec, protectionLevel, id);
  const key = create(hsm.WrappedKeySchema, {
    keyVersionId: id,
    keySpec,
    protectionLevel,
    wrappedMaterial: generated.wrappedMaterial,
    rootKeyId: backend.status().rootKeyId,
  });
  return { key, publicKey: generated.publicKey };
}

const SIGNING = [
  ["RSA_2048 PSS", KeySpec.RSA_2048, SigningAlgorithm.RSA_PSS_SHA_256, "sha256", { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }],
  ["RSA_3072 PKCS1", KeySpec.RSA_3072, SigningAlgorithm.RSA_PKCS1_SHA_256, "sha256", { padding: constants.RSA_PKCS1_PADDING }],
  ["RSA_4096 PSS", KeySpec.RSA_4096, SigningAlgorithm.RSA_PSS_SHA_256, "sha256", { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }],
  ["EC_P256", KeySpec.EC_P256, SigningAlgorithm.ECDSA_SHA_256, "sha256", { dsaEncoding: "der" }],
  ["EC_P384", KeySpec.EC_P384, SigningAlgorithm.ECDSA_SHA_384, "sha384", { dsaEncoding: "der" }],
  ["EC_P256K", KeySpec.EC_P256K, SigningAlgorithm.ECDSA_SHA_256, "sha256", { dsaEncoding: "der" }],
  ["ED25519", KeySpec.ED25519, SigningAlgorithm.ED25519, null, {}],
] as const;

describe.each(BACKENDS)("%s", (_name, backendOf, level) => {
  // HSM-level Ed25519 is refused on SoftHSM 2.6 (see "HSM-level Ed25519" below).
  const signing = SIGNING.filter((c) => !(level === ProtectionLevel.HSM && c[1] === KeySpec.ED25519));
  it.each(signing)("%s: signs what node:crypto verifies with the returned public key", async (_n, spec, algorithm, hash, options) => {
    const backend = backendOf();
    const { key, publicKey } = await newKey(backend, spec, level);
    const spki = createPublicKey({ key: Buffer.from(publicKey), format: "der", type: "spki" });
    const message = Buffer.from(`message for ${_n}`);
    const input = hash === null ? { case: "message" as const, value: message } : { case: "digest" as const, value: createHash(hash).update(message).digest() };
    // Twice: the second use comes from the handle cache.
    for (let i = 0; i < 2; i++) {
      const signature = await backend.sign(key, algorithm, input);
      expect(nodeVerify(hash, message, { key: spki, ...options }, signature)).toBe(true);
    }
  });

  it("decrypts RSA-OAEP with SHA-256 and SHA-1; every failure is invalidCiphertext", async () => {
    const backend = backendOf();
    const { key, publicKey } = await newKey(backend, KeySpec.RSA_2048, level);
    const spki = createPublicKey({ key: Buffer.from(publicKey), format: "der", type: "spki" });
    for (const [algorithm, oaepHash] of [
      [EncryptionAlgorithm.RSAES_OAEP_SHA_256, "sha256"],
      [EncryptionAlgorithm.RSAES_OAEP_SHA_1, "sha1"],
    ] as const) {
      const ciphertext = publicEncrypt({ key: spki, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash }, Buffer.from("plain"));
      expect(await backend.asymmetricDecrypt(key, algorithm, ciphertext)).toEqual(Buffer.from("plain"));
      const tampered = Buffer.from(ciphertext);
      tampered[100]! ^= 1;
      for (const bad of [tampered, ciphertext.subarray(1), Buffer.alloc(256, 0xff), Buffer.alloc(256)]) {
        const err = await rejection(backend.asymmetricDecrypt(key, algorithm, bad));
        expect([err.status, err.code, err.message]).toEqual([status.INVALID_ARGUMENT, ErrorCode.InvalidCiphertext, INVALID_CIPHERTEXT_MESSAGE]);
      }
    }
  });

  it.each([
    ["HMAC_SHA256", KeySpec.HMAC_SHA256, 32],
    ["HMAC_SHA384", KeySpec.HMAC_SHA384, 48],
    ["HMAC_SHA512", KeySpec.HMAC_SHA512, 64],
  ] as const)("%s: full-length, deterministic MACs", async (_n, spec, bytes) => {
    const backend = backendOf();
    const { key, publicKey } = await newKey(backend, spec, level);
    expect(publicKey.length).toBe(0);
    const mac = await backend.generateMac(key, Buffer.from("message"));
    expect(mac.length).toBe(bytes);
    expect(await backend.generateMac(key, Buffer.from("message"))).toEqual(mac);
    expect(await backend.generateMac(key, Buffer.from("messagf"))).not.toEqual(mac);
  });

  it("refuses the wrong algorithm, the wrong input and the wrong family", async () => {
    const backend = backendOf();
    const { key } = await newKey(backend, KeySpec.EC_P384, level);
    const digest32 = { case: "digest" as const, value: Buffer.alloc(32) };
    const wrongAlgorithm = await rejection(backend.sign(key, SigningAlgorithm.ECDSA_SHA_256, digest32));
    expect(wrongAlgorithm.message).toBe("algorithm: SIGNING_ALGORITHM_ECDSA_SHA_256 cannot be used with KEY_SPEC_EC_P384");
    const wrongLength = await rejection(backend.sign(key, SigningAlgorithm.ECDSA_SHA_384, digest32));
    expect(wrongLength.message).toBe("digest: must be 48 bytes for sha384, got 32");
    const noDigest = await rejection(backend.sign(key, SigningAlgorithm.ECDSA_SHA_384, { case: "message", value: Buffer.from("m") }));
    expect(noDigest.message).toBe("digest: is required (the worker signs sha384 digests)");
    const mac = await rejection(backend.generateMac(key, Buffer.from("m")));
    expect([mac.status, mac.message]).toEqual([status.INVALID_ARGUMENT, "key.key_spec: KEY_SPEC_EC_P384 cannot be used for GenerateMac"]);
    const aes = await rejection(backend.encrypt(key, Buffer.from("m"), Buffer.alloc(0)));
    expect(aes.message).toBe("key.key_spec: KEY_SPEC_EC_P384 cannot be used for Encrypt");
    const decrypt = await rejection(backend.asymmetricDecrypt(key, EncryptionAlgorithm.RSAES_OAEP_SHA_256, Buffer.alloc(48)));
    expect(decrypt.message).toBe("key.key_spec: KEY_SPEC_EC_P384 cannot be used for AsymmetricDecrypt");
  });

  it("refuses material that is not the spec's, or corrupt", async () => {
    const backend = backendOf();
    const { key } = await newKey(backend, KeySpec.EC_P256, level);
    // The material of a P-256 key presented as secp256k1, and as RSA.
    for (const keySpec of [KeySpec.EC_P256K, KeySpec.RSA_2048]) {
      const wrong = create(hsm.WrappedKeySchema, { ...key, keyVersionId: `${key.keyVersionId}-as-${keySpec}`, keySpec });
      const algorithm = keySpec === KeySpec.RSA_2048 ? SigningAlgorithm.RSA_PSS_SHA_256 : SigningAlgorithm.ECDSA_SHA_256;
      const err = await rejection(backend.sign(wrong, algorithm, { case: "digest", value: Buffer.alloc(32) }));
      expect([err.status, err.message]).toEqual([status.INVALID_ARGUMENT, "key.wrapped_material: does not unwrap under the root key"]);
    }
    const corrupt = create(hsm.WrappedKeySchema, { ...key, keyVersionId: `${key.keyVersionId}-corrupt`, wrappedMaterial: Buffer.alloc(key.wrappedMaterial.length, 7) });
    const err = await rejection(backend.sign(corrupt, SigningAlgorithm.ECDSA_SHA_256, { case: "digest", value: Buffer.alloc(32) }));
    expect(err.message).toBe("key.wrapped_material: does not unwrap under the root key");
  });
});

describe("HSM and SOFTWARE paths of the PKCS#11 backend", () => {
  // The same node-generated material wrapped for both levels (as an import would: a blob is bound to its
  // level, so a SOFTWARE blob can no longer be relabelled HSM): the two paths must then produce the same
  // MACs and compatible signatures.
  async function asHsm(spec: kmsResources.KeySpec) {
    const { material, publicKey } = await generateSoftwareMaterial(keyFamily(spec, "key_spec"));
    const id = `kv-${nextId++}`;
    const wrapped = async (protectionLevel: kmsResources.ProtectionLevel, keyVersionId: string) =>
      create(hsm.WrappedKeySchema, {
        keyVersionId,
        keySpec: spec,
        protectionLevel,
        ...(await hsmBackend.wrapMaterial(material, { keyVersionId, keySpec: spec, protectionLevel }, keyVersionId)),
      });
    const software = { key: await wrapped(ProtectionLevel.SOFTWARE, id), publicKey };
    const inHsm = await wrapped(ProtectionLevel.HSM, `${id}-hsm`);
    return { software, inHsm };
  }

  it.each([
    ["HMAC_SHA256", KeySpec.HMAC_SHA256],
    ["HMAC_SHA384", KeySpec.HMAC_SHA384],
    ["HMAC_SHA512", KeySpec.HMAC_SHA512],
  ] as const)("%s: same MAC in the HSM and in node:crypto", async (_n, spec) => {
    const { software, inHsm } = await asHsm(spec);
    const message = Buffer.from("same key, two paths");
    expect(await hsmBackend.generateMac(inHsm, message)).toEqual(await hsmBackend.generateMac(software.key, message));
  });

  it.each([
    ["RSA_2048", KeySpec.RSA_2048, SigningAlgorithm.RSA_PKCS1_SHA_256, "sha256"],
    ["EC_P256K", KeySpec.EC_P256K, SigningAlgorithm.ECDSA_SHA_256, "sha256"],
  ] as const)("%s: the HSM signs with node-generated material under the same public key", async (_n, spec, algorithm, hash) => {
    const { software, inHsm } = await asHsm(spec);
    const message = Buffer.from("cross-path");
    const input = hash === null ? { case: "message" as const, value: message } : { case: "digest" as const, value: createHash(hash).update(message).digest() };
    const spki = createPublicKey({ key: Buffer.from(software.publicKey), format: "der", type: "spki" });
    expect(nodeVerify(hash, message, spki, await hsmBackend.sign(inHsm, algorithm, input))).toBe(true);
    if (spec === KeySpec.RSA_2048) {
      // RSA PKCS#1 v1.5 signatures are deterministic: both paths give the same bytes.
      expect(await hsmBackend.sign(inHsm, algorithm, input)).toEqual(await hsmBackend.sign(software.key, algorithm, input));
    }
  });

  it("HSM keys are refused by the software-root backend", async () => {
    const err = await rejection(softwareRoot.generateKeyMaterial(KeySpec.EC_P256, ProtectionLevel.HSM, "kv-hsm"));
    expect([err.status, err.code]).toEqual([status.FAILED_PRECONDITION, ErrorCode.HsmUnsupported]);
  });
});

describe("HSM-level Ed25519", () => {
  // SoftHSM 2.6 cannot wrap EdDSA private keys; earlier releases unwrapped such keys into worker memory,
  // which is no HSM key. Refused, generated or imported, with a reason; SOFTWARE Ed25519 works above.
  it("is refused by the PKCS#11 backend with FAILED_PRECONDITION naming the module limit", async () => {
    const generated = await rejection(hsmBackend.generateKeyMaterial(KeySpec.ED25519, ProtectionLevel.HSM, "kv-ed-hsm"));
    const binding = { keyVersionId: "kv-ed-hsm", keySpec: KeySpec.ED25519, protectionLevel: ProtectionLevel.HSM };
    const imported = await rejection(hsmBackend.wrapMaterial(Buffer.alloc(48), binding, "kv-ed-hsm"));
    for (const err of [generated, imported]) {
      expect([err.status, err.code, err.message]).toEqual([
        status.FAILED_PRECONDITION,
        ErrorCode.HsmUnsupported,
        "KEY_SPEC_ED25519 cannot be PROTECTION_LEVEL_HSM here: the PKCS#11 module cannot wrap its private keys, so they could not stay in the HSM; use PROTECTION_LEVEL_SOFTWARE",
      ]);
    }
    expect(hsmBackend.status().hsmUnsupportedKeySpecs).toEqual([KeySpec.ED25519, KeySpec.ML_DSA_44, KeySpec.ML_DSA_65, KeySpec.ML_DSA_87]);
  });
});

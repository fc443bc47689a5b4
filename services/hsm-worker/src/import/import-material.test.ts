// Key import on both backends: material wrapped by node:crypto (as a customer would with OpenSSL) becomes
// a key version that the backend uses, and that matches the material (checked with node:crypto).
import { constants, createHmac, createPublicKey, createSecretKey, generateKeyPairSync, publicEncrypt, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { create } from "@bufbuild/protobuf";
import { status } from "@grpc/grpc-js";
import { ErrorCode, KmsError } from "@kms/errors";
import { kmsResources } from "@kms/proto";
import { hsm } from "@kms/proto/internal";
import { signingScheme } from "../asymmetric/signing-scheme";
import { verifySignature } from "../asymmetric/verify";
import type { Backend } from "../backend";
import { HsmBackend } from "../pkcs11/hsm-backend";
import { openGcm } from "../software/aes-gcm";
import { kwpWrap } from "../software/key-wrap";
import { SoftwareRootBackend } from "../software/software-root";
import { createTestToken } from "../testing/softhsm-token";
import type { TestToken } from "../testing/softhsm-token";
import { importKeyMaterial } from "./import-material";
import { wireBackend } from "../testing/wire-backend";
import type { WireBackend } from "../testing/wire-backend";

jest.setTimeout(60_000);

const { KeySpec, ProtectionLevel, WrappingAlgorithm, SigningAlgorithm } = kmsResources;

let token: TestToken;
let hsmBackend: WireBackend<HsmBackend>;
let softwareDir: string;
let softwareBackend: WireBackend<SoftwareRootBackend>;

beforeAll(async () => {
  token = createTestToken("import-test");
  hsmBackend = wireBackend(await HsmBackend.open({ module: token.module, tokenLabel: token.label, pin: token.pin, poolSize: 2, rootKeyLabel: "root", keyCacheSize: 8 }));
  softwareDir = mkdtempSync(path.join(os.tmpdir(), "import-test-"));
  softwareBackend = wireBackend(SoftwareRootBackend.open(softwareDir, 8));
});

afterAll(async () => {
  await hsmBackend.close();
  token.remove();
  rmSync(softwareDir, { recursive: true, force: true });
});

/** A wrapping key as kms-api keeps it (the HSM level where the backend has an HSM). */
async function wrappingKey(backend: WireBackend<Backend>, id: string, keySpec: kmsResources.KeySpec = KeySpec.RSA_2048) {
  const level = backend.status().hsmKeysSupported ? ProtectionLevel.HSM : ProtectionLevel.SOFTWARE;
  const generated = await backend.generateKeyMaterial(keySpec, level, id);
  return {
    key: create(hsm.WrappedKeySchema, { keyVersionId: id, keySpec, protectionLevel: level, wrappedMaterial: generated.wrappedMaterial, rootKeyId: backend.status().rootKeyId }),
    publicKey: createPublicKey({ key: Buffer.from(generated.publicKey), format: "der", type: "spki" }),
  };
}

const oaep = (publicKey: ReturnType<typeof createPublicKey>, hash: "sha1" | "sha256", data: Buffer) =>
  publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: hash }, data);

/** What a customer sends for each algorithm. */
function wrapForImport(publicKey: ReturnType<typeof createPublicKey>, algorithm: kmsResources.WrappingAlgorithm, material: Buffer): Buffer {
  if (algorithm === WrappingAlgorithm.RSAES_OAEP_SHA_256) return oaep(publicKey, "sha256", material);
  if (algorithm === WrappingAlgorithm.RSAES_OAEP_SHA_1) return oaep(publicKey, "sha1", material);
  const ephemeral = randomBytes(32);
  return Buffer.concat([oaep(publicKey, "sha256", ephemeral), kwpWrap(createSecretKey(ephemeral), material)]);
}

/** The key version imported material is bound to (format 2): every use names it. */
const IMPORTED = "kv-imported";

function request(wrapping: hsm.WrappedKey, algorithm: kmsResources.WrappingAlgorithm, encrypted: Buffer, keySpec: kmsResources.KeySpec, level: kmsResources.ProtectionLevel) {
  return create(hsm.ImportKeyMaterialRequestSchema, {
    wrappingKey: wrapping,
    wrappingAlgorithm: algorithm,
    encryptedKeyMaterial: encrypted,
    keySpec,
    protectionLevel: level,
    label: "imported",
    keyVersionId: IMPORTED,
  });
}

async function rejection(promise: Promise<unknown>): Promise<KmsError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(KmsError);
    return err as KmsError;
  }
  throw new Error("expected a rejection");
}

const ALGORITHMS = [WrappingAlgorithm.RSAES_OAEP_SHA_256, WrappingAlgorithm.RSAES_OAEP_SHA_1, WrappingAlgorithm.RSA_AES_KEY_WRAP_SHA_256];
const CASES = [
  ...ALGORITHMS.map((a) => ["hsm backend, HSM level", WrappingAlgorithm[a], () => hsmBackend, ProtectionLevel.HSM, a] as const),
  ...ALGORITHMS.map((a) => ["hsm backend, SOFTWARE level", WrappingAlgorithm[a], () => hsmBackend, ProtectionLevel.SOFTWARE, a] as const),
  ...ALGORITHMS.map((a) => ["software root", WrappingAlgorithm[a], () => softwareBackend, ProtectionLevel.SOFTWARE, a] as const),
];

describe.each(CASES)("%s, WRAPPING_ALGORITHM_%s", (_name, _algorithmName, backendOf, level, algorithm) => {
  it("imports AES-256 material that the backend then uses, with a stable fingerprint", async () => {
    const backend = backendOf();
    const material = randomBytes(32);
    const first = await wrappingKey(backend, `wrap-${randomBytes(4).toString("hex")}`);
    const imported = await importKeyMaterial(backend.checked, request(first.key, algorithm, wrapForImport(first.publicKey, algorithm, material), KeySpec.AES_256, level));
    expect(imported.rootKeyId).toBe(backend.status().rootKeyId);
    expect(imported.wrappedMaterial.length).toBe(1 + 40 + 32); // format 2: 0x02, the RFC 5649 wrap, the tag
    expect(imported.fingerprint.length).toBe(32);
    expect(imported.publicKey.length).toBe(0);

    const key = create(hsm.WrappedKeySchema, { keyVersionId: IMPORTED, keySpec: KeySpec.AES_256, protectionLevel: level, wrappedMaterial: imported.wrappedMaterial, rootKeyId: imported.rootKeyId });
    const sealed = await backend.encrypt(key, Buffer.from("hello"), Buffer.from("aad"));
    expect(openGcm(createSecretKey(material), sealed, Buffer.from("aad")).toString()).toBe("hello");

    // The same material through another token: the same fingerprint. Other material: another one.
    const second = await wrappingKey(backend, `wrap-${randomBytes(4).toString("hex")}`);
    const again = await importKeyMaterial(backend.checked, request(second.key, algorithm, wrapForImport(second.publicKey, algorithm, material), KeySpec.AES_256, level));
    expect(Buffer.from(again.fingerprint).equals(Buffer.from(imported.fingerprint))).toBe(true);
    const other = await importKeyMaterial(backend.checked, request(second.key, algorithm, wrapForImport(second.publicKey, algorithm, randomBytes(32)), KeySpec.AES_256, level));
    expect(Buffer.from(other.fingerprint).equals(Buffer.from(imported.fingerprint))).toBe(false);
  });

  it("refuses material of the wrong length for the spec, and material that does not decrypt", async () => {
    const backend = backendOf();
    const w = await wrappingKey(backend, `wrap-${randomBytes(4).toString("hex")}`);
    const short = await rejection(importKeyMaterial(backend.checked, request(w.key, algorithm, wrapForImport(w.publicKey, algorithm, randomBytes(31)), KeySpec.AES_256, level)));
    expect([short.status, short.code, short.message]).toEqual([
      status.INVALID_ARGUMENT,
      ErrorCode.InvalidParameter,
      "encrypted_key_material: key material must be 32 bytes for KEY_SPEC_AES_256, got 31",
    ]);
    const aes128 = await rejection(importKeyMaterial(backend.checked, request(w.key, algorithm, wrapForImport(w.publicKey, algorithm, randomBytes(32)), KeySpec.AES_128, level)));
    expect(aes128.message).toBe("encrypted_key_material: key material must be 16 bytes for KEY_SPEC_AES_128, got 32");

    const tampered = wrapForImport(w.publicKey, algorithm, randomBytes(32));
    tampered[tampered.length - 1]! ^= 1;
    const bad = await rejection(importKeyMaterial(backend.checked, request(w.key, algorithm, tampered, KeySpec.AES_256, level)));
    expect([bad.status, bad.code, bad.message]).toEqual([
      status.INVALID_ARGUMENT,
      ErrorCode.InvalidParameter,
      "encrypted_key_material: does not decrypt with the import token's wrapping key",
    ]);
    const truncated = await rejection(importKeyMaterial(backend.checked, request(w.key, algorithm, Buffer.alloc(10), KeySpec.AES_256, level)));
    expect(truncated.message).toBe("encrypted_key_material: does not decrypt with the import token's wrapping key");
  });
});

describe.each([
  ["hsm backend, HSM level", () => hsmBackend, ProtectionLevel.HSM],
  ["hsm backend, SOFTWARE level", () => hsmBackend, ProtectionLevel.SOFTWARE],
  ["software root", () => softwareBackend, ProtectionLevel.SOFTWARE],
] as const)("%s: other key specs", (_name, backendOf, level) => {
  it("imports an HMAC-SHA-256 key", async () => {
    const backend = backendOf();
    const w = await wrappingKey(backend, `wrap-${randomBytes(4).toString("hex")}`, KeySpec.RSA_3072);
    const material = randomBytes(32);
    const imported = await importKeyMaterial(backend.checked, request(w.key, WrappingAlgorithm.RSAES_OAEP_SHA_256, wrapForImport(w.publicKey, WrappingAlgorithm.RSAES_OAEP_SHA_256, material), KeySpec.HMAC_SHA256, level));
    const key = create(hsm.WrappedKeySchema, { keyVersionId: IMPORTED, keySpec: KeySpec.HMAC_SHA256, protectionLevel: level, wrappedMaterial: imported.wrappedMaterial, rootKeyId: imported.rootKeyId });
    const mac = await backend.generateMac(key, Buffer.from("m"));
    expect(mac.equals(createHmac("sha256", material).update("m").digest())).toBe(true);
  });

  it("imports an EC P-256 private key (PKCS#8, RSA_AES_KEY_WRAP) that signs verifiably", async () => {
    const backend = backendOf();
    const w = await wrappingKey(backend, `wrap-${randomBytes(4).toString("hex")}`, KeySpec.RSA_4096);
    const pair = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
    const pkcs8 = pair.privateKey.export({ type: "pkcs8", format: "der" });
    const imported = await importKeyMaterial(backend.checked, request(w.key, WrappingAlgorithm.RSA_AES_KEY_WRAP_SHA_256, wrapForImport(w.publicKey, WrappingAlgorithm.RSA_AES_KEY_WRAP_SHA_256, pkcs8), KeySpec.EC_P256, level));
    expect(Buffer.from(imported.publicKey).equals(pair.publicKey.export({ type: "spki", format: "der" }))).toBe(true);
    const key = create(hsm.WrappedKeySchema, { keyVersionId: IMPORTED, keySpec: KeySpec.EC_P256, protectionLevel: level, wrappedMaterial: imported.wrappedMaterial, rootKeyId: imported.rootKeyId });
    const digest = randomBytes(32);
    const signature = await backend.sign(key, SigningAlgorithm.ECDSA_SHA_256, { case: "digest", value: digest });
    // The signature verifies against the caller's own public key.
    const scheme = signingScheme({ kind: "ec", curve: "P-256" }, KeySpec.EC_P256, SigningAlgorithm.ECDSA_SHA_256);
    expect(verifySignature(pair.publicKey, scheme, { kind: "digest", digest }, signature)).toBe(true);

    const wrong = await rejection(importKeyMaterial(backend.checked, request(w.key, WrappingAlgorithm.RSA_AES_KEY_WRAP_SHA_256, wrapForImport(w.publicKey, WrappingAlgorithm.RSA_AES_KEY_WRAP_SHA_256, pkcs8), KeySpec.EC_P384, level)));
    expect(wrong.message).toBe("encrypted_key_material: the PKCS#8 private key is not a KEY_SPEC_EC_P384 key");
  });
});

describe("software root", () => {
  it("refuses PROTECTION_LEVEL_HSM", async () => {
    const w = await wrappingKey(softwareBackend, "wrap-hsm");
    const err = await rejection(
      importKeyMaterial(softwareBackend.checked, request(w.key, WrappingAlgorithm.RSAES_OAEP_SHA_256, wrapForImport(w.publicKey, WrappingAlgorithm.RSAES_OAEP_SHA_256, randomBytes(32)), KeySpec.AES_256, ProtectionLevel.HSM)),
    );
    expect([err.status, err.code]).toEqual([status.FAILED_PRECONDITION, ErrorCode.HsmUnsupported]);
  });
});

import { create } from "@bufbuild/protobuf";
import { status } from "@grpc/grpc-js";
import { ErrorCode, INVALID_CIPHERTEXT_MESSAGE, KmsError } from "@kms/errors";
import { kmsResources } from "@kms/proto";
import { hsm } from "@kms/proto/internal";
import * as pkcs11js from "pkcs11js";
import { bool, readAttributes } from "./attributes";
import { findRootKeys, rootLabels } from "./root-key";
import { HsmBackend } from "./hsm-backend";
import { Pkcs11TokenInventory } from "./token-objects";
import type { HsmBackendOptions } from "./hsm-backend";
import { createTestToken } from "../testing/softhsm-token";
import type { TestToken } from "../testing/softhsm-token";
import { wireBackend } from "../testing/wire-backend";
import type { WireBackend } from "../testing/wire-backend";

jest.setTimeout(60_000);

const { KeySpec, ProtectionLevel } = kmsResources;
const ROOT_LABEL = "test-root";

let token: TestToken;
let options: HsmBackendOptions;
let backend: WireBackend<HsmBackend>;

beforeAll(async () => {
  token = createTestToken("hsm-backend-test");
  options = {
    module: token.module,
    tokenLabel: token.label,
    pin: token.pin,
    poolSize: 2,
    rootKeyLabel: ROOT_LABEL,
    keyCacheSize: 2,
  };
  backend = wireBackend(await HsmBackend.open(options));
});

afterAll(async () => {
  await backend.close();
  token.remove();
});

async function newKey(
  id: string,
  protectionLevel: kmsResources.ProtectionLevel,
  keySpec: kmsResources.KeySpec = KeySpec.AES_256,
): Promise<hsm.WrappedKey> {
  const { wrappedMaterial } = await backend.generateKeyMaterial(keySpec, protectionLevel, id);
  return create(hsm.WrappedKeySchema, { keyVersionId: id, keySpec, protectionLevel, wrappedMaterial, rootKeyId: backend.rootKeyId });
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error("expected a rejection");
}

function expectKmsError(err: unknown, code: status, errorCode: string, message?: string): void {
  expect(err).toBeInstanceOf(KmsError);
  const e = err as KmsError;
  expect({ status: e.status, code: e.code }).toEqual({ status: code, code: errorCode });
  if (message !== undefined) expect(e.message).toBe(message);
}

const aad = Buffer.from("header|context");

describe("root key", () => {
  it.each(["hsm", "software"] as const)("%s: an AES-256 token key that is sensitive, not extractable, and only wraps", async (level) => {
    const lib = backend.lib;
    const session = lib.C_OpenSession(backend.pool.slotId, pkcs11js.CKF_SERIAL_SESSION);
    try {
      // A new token gets a root set (one root per level, a MAC key) and no legacy root.
      expect(findRootKeys(lib, session, ROOT_LABEL)).toEqual([]);
      const [root, ...others] = findRootKeys(lib, session, rootLabels(ROOT_LABEL)[level]);
      expect(others).toEqual([]);
      expect(root?.id).toBe(backend.rootKeyId);
      expect(backend.rootKeyId).toMatch(/^[0-9a-f]{32}$/);
      const a = readAttributes(lib, session, root!.handle, [
        pkcs11js.CKA_SENSITIVE,
        pkcs11js.CKA_EXTRACTABLE,
        pkcs11js.CKA_WRAP,
        pkcs11js.CKA_UNWRAP,
        pkcs11js.CKA_ENCRYPT,
        pkcs11js.CKA_DECRYPT,
        pkcs11js.CKA_TOKEN,
        pkcs11js.CKA_VALUE_LEN,
      ], "test");
      expect({
        sensitive: bool(a.get(pkcs11js.CKA_SENSITIVE)),
        extractable: bool(a.get(pkcs11js.CKA_EXTRACTABLE)),
        wrap: bool(a.get(pkcs11js.CKA_WRAP)),
        unwrap: bool(a.get(pkcs11js.CKA_UNWRAP)),
        encrypt: bool(a.get(pkcs11js.CKA_ENCRYPT)),
        decrypt: bool(a.get(pkcs11js.CKA_DECRYPT)),
        token: bool(a.get(pkcs11js.CKA_TOKEN)),
        valueLen: a.get(pkcs11js.CKA_VALUE_LEN)?.readUInt32LE(0),
      }).toEqual({ sensitive: true, extractable: false, wrap: true, unwrap: true, encrypt: false, decrypt: false, token: true, valueLen: 32 });
    } finally {
      lib.C_CloseSession(session);
    }
  });

  it("is found again (same id) by a second backend on the same token", async () => {
    const second = wireBackend(await HsmBackend.open(options));
    try {
      expect(second.rootKeyId).toBe(backend.rootKeyId);
      expect(second.status()).toEqual({
        backend: hsm.Backend.PKCS11,
        rootKeyId: backend.rootKeyId,
        description: `PKCS#11 module ${token.module}, token "hsm-backend-test"`,
        hsmKeysSupported: true,
        legacyRootKeyId: "",
        hsmUnsupportedKeySpecs: [KeySpec.ED25519, KeySpec.ML_DSA_44, KeySpec.ML_DSA_65, KeySpec.ML_DSA_87],
        retiringRootKeyIds: [],
        sourceRootKeyIds: [],
      });
    } finally {
      await second.close();
    }
  });

  it("refuses material wrapped under another root key with FAILED_PRECONDITION", async () => {
    const key = await newKey("kv-mismatch", ProtectionLevel.HSM);
    const other = create(hsm.WrappedKeySchema, { ...key, rootKeyId: "00".repeat(16) });
    const err = await rejection(backend.encrypt(other, Buffer.from("x"), aad));
    expectKmsError(
      err,
      status.FAILED_PRECONDITION,
      ErrorCode.RootKeyMismatch,
      `key.root_key_id: material was wrapped under root key "${"00".repeat(16)}"; this worker holds root key "${backend.rootKeyId}"`,
    );
  });

  it("a token with no root key under that label gets a new one, which refuses material of the other root", async () => {
    const other = wireBackend(await HsmBackend.open({ ...options, rootKeyLabel: "another-root" }));
    try {
      expect(other.rootKeyId).not.toBe(backend.rootKeyId);
      const key = await newKey("kv-other-root", ProtectionLevel.SOFTWARE);
      const err = await rejection(other.decrypt(key, Buffer.alloc(40), aad));
      expectKmsError(err, status.FAILED_PRECONDITION, ErrorCode.RootKeyMismatch);
    } finally {
      await other.close();
    }
  });
});

describe.each([
  ["HSM", ProtectionLevel.HSM],
  ["SOFTWARE", ProtectionLevel.SOFTWARE],
])("PROTECTION_LEVEL_%s keys", (name, level) => {
  it.each([
    // Format 2: 0x02, the RFC 5649 wrap (40 or 24 bytes), a 32-byte tag.
    ["AES_256", KeySpec.AES_256, 73],
    ["AES_128", KeySpec.AES_128, 57],
  ])("%s: generate, wrap, unwrap, encrypt and decrypt", async (_spec, spec, wrappedBytes) => {
    const key = await newKey(`kv-${name}-${spec}`, level, spec);
    expect(key.wrappedMaterial.length).toBe(wrappedBytes);
    const plaintext = Buffer.from("attack at dawn");
    const sealed = await backend.encrypt(key, plaintext, aad);
    expect(sealed.length).toBe(12 + plaintext.length + 16);
    expect(await backend.decrypt(key, sealed, aad)).toEqual(plaintext);
    // A fresh IV every time.
    const again = await backend.encrypt(key, plaintext, aad);
    expect(again.subarray(0, 12).equals(sealed.subarray(0, 12))).toBe(false);
    // Forgetting the key makes the next call unwrap it again, with the same result.
    await backend.forgetKeys([key.keyVersionId]);
    expect(await backend.decrypt(key, again, aad)).toEqual(plaintext);
  });

  it("tampered ciphertext, wrong AAD and short input are invalidCiphertext", async () => {
    const key = await newKey(`kv-${name}-tamper`, level);
    const sealed = await backend.encrypt(key, Buffer.from("secret"), aad);
    for (const index of [0, 12, sealed.length - 1]) {
      const tampered = Buffer.from(sealed);
      tampered[index]! ^= 1;
      expectKmsError(await rejection(backend.decrypt(key, tampered, aad)), status.INVALID_ARGUMENT, ErrorCode.InvalidCiphertext, INVALID_CIPHERTEXT_MESSAGE);
    }
    expectKmsError(await rejection(backend.decrypt(key, sealed, Buffer.from("other"))), status.INVALID_ARGUMENT, ErrorCode.InvalidCiphertext, INVALID_CIPHERTEXT_MESSAGE);
    expectKmsError(await rejection(backend.decrypt(key, sealed.subarray(0, 27), aad)), status.INVALID_ARGUMENT, ErrorCode.InvalidCiphertext, INVALID_CIPHERTEXT_MESSAGE);
    // The session is still usable after a failed decrypt (the operation ended).
    expect(await backend.decrypt(key, sealed, aad)).toEqual(Buffer.from("secret"));
  });

  it("encrypts an empty plaintext", async () => {
    const key = await newKey(`kv-${name}-empty`, level);
    const sealed = await backend.encrypt(key, Buffer.alloc(0), aad);
    expect(sealed.length).toBe(28);
    expect(await backend.decrypt(key, sealed, aad)).toEqual(Buffer.alloc(0));
  });
});

describe("inline calls (KMS_PKCS11_CALL_MODE=inline)", () => {
  it("seal and open on the worker's thread, agree with the thread-pool backend, and keep failures the same", async () => {
    const inline = wireBackend(await HsmBackend.open({ ...options, callMode: "inline" }));
    try {
      const key = await newKey("kv-inline", ProtectionLevel.HSM);
      const plaintext = Buffer.from("attack at dawn");
      const sealed = await inline.encrypt(key, plaintext, aad);
      expect(await backend.decrypt(key, sealed, aad)).toEqual(plaintext);
      expect(await inline.decrypt(key, await backend.encrypt(key, plaintext, aad), aad)).toEqual(plaintext);
      const tampered = Buffer.from(sealed);
      tampered[20]! ^= 1;
      expectKmsError(await rejection(inline.decrypt(key, tampered, aad)), status.INVALID_ARGUMENT, ErrorCode.InvalidCiphertext, INVALID_CIPHERTEXT_MESSAGE);
      expect(await inline.decrypt(key, sealed, aad)).toEqual(plaintext); // the session is still usable
    } finally {
      await inline.close();
    }
  });
});

describe("wrapped material", () => {
  it("that does not unwrap under the root key is INVALID_ARGUMENT naming the field", async () => {
    const key = await newKey("kv-corrupt", ProtectionLevel.HSM);
    const corrupt = create(hsm.WrappedKeySchema, { ...key, keyVersionId: "kv-corrupt-2", wrappedMaterial: Buffer.from(key.wrappedMaterial).fill(7, 0, 8) });
    expectKmsError(
      await rejection(backend.encrypt(corrupt, Buffer.from("x"), aad)),
      status.INVALID_ARGUMENT,
      ErrorCode.InvalidParameter,
      "key.wrapped_material: does not unwrap under the root key",
    );
  });

  it("cached for one version, spec and level serves none other: the same bytes as SOFTWARE or as HMAC are refused", async () => {
    const key = await newKey("kv-cache-bind", ProtectionLevel.HSM);
    const sealed = await backend.encrypt(key, Buffer.from("cached"), aad); // now in the handle cache
    const asSoftware = create(hsm.WrappedKeySchema, { ...key, protectionLevel: ProtectionLevel.SOFTWARE });
    const asHmac = create(hsm.WrappedKeySchema, { ...key, keySpec: KeySpec.HMAC_SHA256 });
    for (const attempt of [backend.decrypt(asSoftware, sealed, aad), backend.encrypt(asSoftware, Buffer.from("x"), aad), backend.generateMac(asHmac, Buffer.from("m"))]) {
      expectKmsError(await rejection(attempt), status.INVALID_ARGUMENT, ErrorCode.InvalidParameter, "key.wrapped_material: does not unwrap under the root key");
    }
    expect((await backend.decrypt(key, sealed, aad)).toString()).toBe("cached");
  });

  it("of the wrong length for its spec is refused before unwrapping", async () => {
    const key = await newKey("kv-len", ProtectionLevel.SOFTWARE);
    const wrong = create(hsm.WrappedKeySchema, { ...key, keySpec: KeySpec.AES_128 });
    expectKmsError(
      await rejection(backend.encrypt(wrong, Buffer.from("x"), aad, "source_key")),
      status.INVALID_ARGUMENT,
      ErrorCode.InvalidParameter,
      "source_key.wrapped_material: must be 57 bytes for KEY_SPEC_AES_128",
    );
  });

  it("unknown specs and unspecified levels are INVALID_ARGUMENT", async () => {
    expectKmsError(
      await rejection(backend.generateKeyMaterial(KeySpec.UNSPECIFIED, ProtectionLevel.HSM, "x")),
      status.INVALID_ARGUMENT,
      ErrorCode.InvalidParameter,
      "key_spec: KEY_SPEC_UNSPECIFIED is not supported by the HSM worker",
    );
    expectKmsError(
      await rejection(backend.generateKeyMaterial(KeySpec.AES_256, ProtectionLevel.UNSPECIFIED, "x")),
      status.INVALID_ARGUMENT,
      ErrorCode.InvalidParameter,
      "protection_level: must be PROTECTION_LEVEL_SOFTWARE or PROTECTION_LEVEL_HSM",
    );
  });
});

describe("handle cache", () => {
  it("holds at most keyCacheSize keys and still serves evicted ones by unwrapping again", async () => {
    const keys = await Promise.all(["c1", "c2", "c3"].map((id) => newKey(`kv-cache-${id}`, ProtectionLevel.HSM)));
    const sealed = [];
    for (const key of keys) sealed.push(await backend.encrypt(key, Buffer.from(key.keyVersionId), aad));
    expect(backend.cachedKeys).toBe(2);
    for (const [i, key] of keys.entries()) {
      expect((await backend.decrypt(key, sealed[i]!, aad)).toString()).toBe(key.keyVersionId);
    }
    expect(backend.cachedKeys).toBe(2);
  });
});

describe("session pool", () => {
  it("serialises many concurrent calls over 2 sessions", async () => {
    const hsmKey = await newKey("kv-concurrent-hsm", ProtectionLevel.HSM);
    const swKey = await newKey("kv-concurrent-sw", ProtectionLevel.SOFTWARE);
    const results = await Promise.all(
      Array.from({ length: 60 }, async (_, i) => {
        const key = i % 2 === 0 ? hsmKey : swKey;
        const plaintext = Buffer.from(`message ${i}`);
        const sealed = await backend.encrypt(key, plaintext, aad);
        return (await backend.decrypt(key, sealed, aad)).toString();
      }),
    );
    expect(results).toEqual(Array.from({ length: 60 }, (_, i) => `message ${i}`));
  });

  it("heals when every session is closed underneath it (C_CloseAllSessions), retrying once", async () => {
    const key = await newKey("kv-heal", ProtectionLevel.HSM);
    const sealed = await backend.encrypt(key, Buffer.from("before"), aad);
    const generation = backend.pool.generation;
    backend.lib.C_CloseAllSessions(backend.pool.slotId);
    expect(await backend.decrypt(key, sealed, aad)).toEqual(Buffer.from("before"));
    expect(backend.pool.generation).toBe(generation + 1);
    // The other session was lost too; it is replaced on its next use without another loss.
    const results = await Promise.all([1, 2, 3, 4].map(() => backend.encrypt(key, Buffer.from("after"), aad)));
    for (const s of results) expect(await backend.decrypt(key, s, aad)).toEqual(Buffer.from("after"));
    expect(backend.pool.generation).toBe(generation + 1);
  });

  it("re-initialises the module when the library lost its state (C_Finalize underneath)", async () => {
    const key = await newKey("kv-reinit", ProtectionLevel.SOFTWARE);
    const hsmKey = await newKey("kv-reinit-hsm", ProtectionLevel.HSM);
    const sealed = await backend.encrypt(hsmKey, Buffer.from("before"), aad);
    const epoch = backend.pool.module.epoch;
    backend.lib.C_Finalize();
    expect(await backend.decrypt(hsmKey, sealed, aad)).toEqual(Buffer.from("before"));
    expect(backend.pool.module.epoch).toBe(epoch + 1);
    const s2 = await backend.encrypt(key, Buffer.from("x"), aad);
    expect(await backend.decrypt(key, s2, aad)).toEqual(Buffer.from("x"));
  });
});

describe("token inventory (ListTokenObjects)", () => {
  it("lists the root sets on the token (this file makes two), and never a generated key", async () => {
    await newKey("kv-inventory", ProtectionLevel.HSM);
    const labels = { tokenLabel: token.label, rootKeyLabel: ROOT_LABEL, checkpointKeyLabel: `${ROOT_LABEL}/checkpoint` };
    const listing = await new Pkcs11TokenInventory(backend.pool, labels).list();
    expect({ ...listing, objects: [] }).toEqual({ ...labels, objects: [] });
    const ours = Object.values(rootLabels(ROOT_LABEL)).sort();
    const mine = listing.objects.filter((o) => !o.label.startsWith("another-root/"));
    expect(mine.map((o) => [o.class, o.label, o.id]).sort()).toEqual(ours.map((label) => ["secret key", label, backend.rootKeyId]));
    expect(listing.objects.filter((o) => o.label === "kv-inventory")).toEqual([]);
  });
});

describe("random", () => {
  it("comes from the HSM in the requested length", async () => {
    const a = await backend.generateRandom(1024);
    const b = await backend.generateRandom(1024);
    expect([a.length, b.length]).toEqual([1024, 1024]);
    expect(a.equals(b)).toBe(false);
  });
});

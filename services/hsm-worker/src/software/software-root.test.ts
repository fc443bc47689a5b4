import { createHash } from "node:crypto";
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { create } from "@bufbuild/protobuf";
import { status } from "@grpc/grpc-js";
import { ErrorCode, INVALID_CIPHERTEXT_MESSAGE, KmsError } from "@kms/errors";
import { kmsResources } from "@kms/proto";
import { hsm } from "@kms/proto/internal";
import { SoftwareRootBackend } from "./software-root";
import { wireBackend } from "../testing/wire-backend";
import type { WireBackend } from "../testing/wire-backend";

const { KeySpec, ProtectionLevel } = kmsResources;

let dataDir: string;
let backend: WireBackend<SoftwareRootBackend>;

beforeEach(() => {
  dataDir = path.join(mkdtempSync(path.join(os.tmpdir(), "software-root-")), "data");
  backend = wireBackend(SoftwareRootBackend.open(dataDir, 2));
});

afterEach(() => rmSync(path.dirname(dataDir), { recursive: true, force: true }));

async function rejection(promise: Promise<unknown>): Promise<KmsError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(KmsError);
    return err as KmsError;
  }
  throw new Error("expected a rejection");
}

async function newKey(id: string, keySpec: kmsResources.KeySpec = KeySpec.AES_256): Promise<hsm.WrappedKey> {
  const { wrappedMaterial } = await backend.generateKeyMaterial(keySpec, ProtectionLevel.SOFTWARE, id);
  return create(hsm.WrappedKeySchema, { keyVersionId: id, keySpec, protectionLevel: ProtectionLevel.SOFTWARE, wrappedMaterial, rootKeyId: backend.rootKeyId });
}

describe("software root key file", () => {
  it("is 32 bytes, mode 0600 in a 0700 directory, and its id is derived from it", () => {
    const file = path.join(dataDir, "root-key");
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(dataDir).mode & 0o777).toBe(0o700);
    const key = readFileSync(file);
    expect(key.length).toBe(32);
    // Format 2 material has its own id (it is under keys derived from the file); format 1 keeps the old one.
    const expected = createHash("sha256").update("kms-root-key-id-v2").update(key).digest().subarray(0, 16).toString("hex");
    const legacy = createHash("sha256").update("kms-root-key-id").update(key).digest().subarray(0, 16).toString("hex");
    expect(backend.rootKeyId).toBe(expected);
    expect(backend.status()).toEqual({
      backend: hsm.Backend.SOFTWARE_ROOT,
      rootKeyId: expected,
      description: `software root key ${file}`,
      hsmKeysSupported: false,
      legacyRootKeyId: legacy,
      hsmUnsupportedKeySpecs: [],
      retiringRootKeyIds: [],
    });
  });

  it("is reused on the next start (same id, old material still unwraps)", async () => {
    const key = await newKey("kv-1");
    const sealed = await backend.encrypt(key, Buffer.from("hello"), Buffer.alloc(0));
    const again = wireBackend(SoftwareRootBackend.open(dataDir, 2));
    expect(again.rootKeyId).toBe(backend.rootKeyId);
    expect(await again.decrypt(key, sealed, Buffer.alloc(0))).toEqual(Buffer.from("hello"));
  });

  it("is refused when others can read it", () => {
    chmodSync(path.join(dataDir, "root-key"), 0o644);
    expect(() => SoftwareRootBackend.open(dataDir, 2)).toThrow(/has mode 644; it must be readable by its owner only/);
  });
});

describe("software-root backend", () => {
  it.each([
    // Format 2: 0x02, the RFC 5649 wrap (40 or 24 bytes), a 32-byte tag.
    ["AES_256", KeySpec.AES_256, 73],
    ["AES_128", KeySpec.AES_128, 57],
  ])("%s round trip", async (_name, spec, wrappedBytes) => {
    const key = await newKey(`kv-${spec}`, spec);
    expect(key.wrappedMaterial.length).toBe(wrappedBytes);
    const sealed = await backend.encrypt(key, Buffer.from("payload"), Buffer.from("aad"));
    expect(sealed.length).toBe(12 + 7 + 16);
    expect(await backend.decrypt(key, sealed, Buffer.from("aad"))).toEqual(Buffer.from("payload"));
  });

  it("tamper, wrong AAD and short input are invalidCiphertext", async () => {
    const key = await newKey("kv-t");
    const sealed = await backend.encrypt(key, Buffer.from("payload"), Buffer.from("aad"));
    const tampered = Buffer.from(sealed);
    tampered[20]! ^= 0x80;
    for (const [input, aad] of [
      [tampered, Buffer.from("aad")],
      [sealed, Buffer.from("aae")],
      [sealed.subarray(0, 27), Buffer.from("aad")],
    ] as const) {
      const err = await rejection(backend.decrypt(key, input, aad));
      expect([err.status, err.code, err.message]).toEqual([status.INVALID_ARGUMENT, ErrorCode.InvalidCiphertext, INVALID_CIPHERTEXT_MESSAGE]);
    }
  });

  it("refuses PROTECTION_LEVEL_HSM with FAILED_PRECONDITION", async () => {
    const err = await rejection(backend.generateKeyMaterial(KeySpec.AES_256, ProtectionLevel.HSM, "kv-h"));
    expect([err.status, err.code]).toEqual([status.FAILED_PRECONDITION, ErrorCode.HsmUnsupported]);
    expect(err.message).toContain("PROTECTION_LEVEL_HSM");
    const key = await newKey("kv-h");
    const hsmKey = create(hsm.WrappedKeySchema, { ...key, protectionLevel: ProtectionLevel.HSM });
    const err2 = await rejection(backend.encrypt(hsmKey, Buffer.from("x"), Buffer.alloc(0)));
    expect([err2.status, err2.code]).toEqual([status.FAILED_PRECONDITION, ErrorCode.HsmUnsupported]);
  });

  it("refuses material of another root key with FAILED_PRECONDITION", async () => {
    const key = await newKey("kv-r");
    const other = create(hsm.WrappedKeySchema, { ...key, rootKeyId: "ab".repeat(16) });
    const err = await rejection(backend.decrypt(other, Buffer.alloc(40), Buffer.alloc(0)));
    expect([err.status, err.code, err.message]).toEqual([
      status.FAILED_PRECONDITION,
      ErrorCode.RootKeyMismatch,
      `key.root_key_id: material was wrapped under root key "${"ab".repeat(16)}"; this worker holds root key "${backend.rootKeyId}"`,
    ]);
  });

  it("binds material to its version and spec, cached or not: moved or respecified, it does not unwrap", async () => {
    const key = await newKey("kv-bound");
    const sealed = await backend.encrypt(key, Buffer.from("bound"), Buffer.alloc(0)); // now cached
    const moved = create(hsm.WrappedKeySchema, { ...key, keyVersionId: "kv-elsewhere" });
    const asHmac = create(hsm.WrappedKeySchema, { ...key, keySpec: KeySpec.HMAC_SHA256 });
    for (const attempt of [backend.decrypt(moved, sealed, Buffer.alloc(0)), backend.generateMac(asHmac, Buffer.from("m"))]) {
      const err = await rejection(attempt);
      expect([err.status, err.code, err.message]).toEqual([status.INVALID_ARGUMENT, ErrorCode.InvalidParameter, "key.wrapped_material: does not unwrap under the root key"]);
    }
  });

  it("refuses corrupt wrapped material and a missing key", async () => {
    const key = await newKey("kv-c");
    const corrupt = create(hsm.WrappedKeySchema, { ...key, wrappedMaterial: Buffer.alloc(40, 1) });
    const err = await rejection(backend.encrypt(corrupt, Buffer.from("x"), Buffer.alloc(0)));
    expect([err.status, err.code, err.message]).toEqual([status.INVALID_ARGUMENT, ErrorCode.InvalidParameter, "key.wrapped_material: does not unwrap under the root key"]);
    const missing = await rejection(backend.encrypt(undefined, Buffer.from("x"), Buffer.alloc(0)));
    expect(missing.message).toBe("key: is required");
  });

  it("caches at most keyCacheSize KeyObjects and forgets on request", async () => {
    const keys = [await newKey("a"), await newKey("b"), await newKey("c")];
    for (const key of keys) await backend.encrypt(key, Buffer.from("x"), Buffer.alloc(0));
    expect(backend.cachedKeys).toBe(2);
    await backend.forgetKeys(["b", "c", "unknown"]);
    expect(backend.cachedKeys).toBe(0);
    const sealed = await backend.encrypt(keys[1]!, Buffer.from("y"), Buffer.alloc(0));
    expect(await backend.decrypt(keys[1]!, sealed, Buffer.alloc(0))).toEqual(Buffer.from("y"));
  });
});

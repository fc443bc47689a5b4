// A software root file as the source of a move onto a token (KMS_SOURCE_ROOT_KEY_FILE): the PKCS#11
// backend unwraps SOFTWARE material under the file's ids (format 2 after its tag matched, format 1), never
// wraps under them, re-wraps it onto the token's current set, and "retires" the file by reporting it so
// (it cannot destroy a file: the operator deletes it).
import { randomBytes, randomUUID } from "node:crypto";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { create } from "@bufbuild/protobuf";
import { ErrorCode } from "@kms/errors";
import { kmsResources } from "@kms/proto";
import { hsm } from "@kms/proto/internal";
import { checkWrappedKey } from "../backend";
import { SoftwareRootBackend } from "../software/software-root";
import { createTestToken } from "../testing/softhsm-token";
import type { TestToken } from "../testing/softhsm-token";
import { wireBackend } from "../testing/wire-backend";
import type { WireBackend } from "../testing/wire-backend";
import { HsmBackend } from "./hsm-backend";

jest.setTimeout(60_000);

const { KeySpec, ProtectionLevel } = kmsResources;
const aad = Buffer.from("aad");

let token: TestToken;
let dir: string;
let file: WireBackend<SoftwareRootBackend>;
let token_: WireBackend<HsmBackend>;

beforeAll(async () => {
  token = createTestToken("source-root");
  dir = mkdtempSync(path.join(os.tmpdir(), "kms-source-root-"));
  file = wireBackend(SoftwareRootBackend.open(dir, 8));
  token_ = wireBackend(
    await HsmBackend.open({ module: token.module, tokenLabel: token.label, pin: token.pin, poolSize: 2, rootKeyLabel: "moving", keyCacheSize: 8, sourceRootKeyFile: path.join(dir, "root-key") }),
  );
});

afterAll(async () => {
  await token_?.close();
  await file?.close();
  token.remove();
  rmSync(dir, { recursive: true, force: true });
});

async function fileKey(): Promise<hsm.WrappedKey> {
  const keyVersionId = randomUUID();
  const made = await file.generateKeyMaterial(KeySpec.AES_256, ProtectionLevel.SOFTWARE, keyVersionId);
  return create(hsm.WrappedKeySchema, { keyVersionId, keySpec: KeySpec.AES_256, protectionLevel: ProtectionLevel.SOFTWARE, wrappedMaterial: made.wrappedMaterial, rootKeyId: made.rootKeyId });
}

it("unwraps the file's format 2 and format 1 material, re-wraps it onto the token, and never wraps under the file", async () => {
  const { rootKeyId: fileId, legacyRootKeyId: fileLegacyId } = file.status();
  expect(token_.status().sourceRootKeyIds).toEqual([fileId, fileLegacyId]);
  const v2 = await fileKey();
  const material = randomBytes(32);
  const v1 = create(hsm.WrappedKeySchema, { keyVersionId: randomUUID(), keySpec: KeySpec.AES_256, protectionLevel: ProtectionLevel.SOFTWARE, wrappedMaterial: await file.legacyWrap(material), rootKeyId: fileLegacyId });
  material.fill(0);
  for (const key of [v2, v1]) {
    const sealed = await file.encrypt(key, Buffer.from("before"), aad);
    // The token worker reads the file's material...
    expect(Buffer.from(await token_.decrypt(key, sealed, aad)).toString()).toBe("before");
    expect(Buffer.from(await file.decrypt(key, await token_.encrypt(key, Buffer.from("during"), aad), aad)).toString()).toBe("during");
    // ...and moves it: the moved blob names the token's current set and still decrypts what the file made.
    const moved = await token_.rewrapKey(checkWrappedKey(key, "key", token_.accepts()), "key");
    if (moved.outcome !== "rewrapped") throw new Error(`not re-wrapped: ${moved.outcome}`);
    expect(moved.rootKeyId).toBe(token_.rootKeyId);
    const movedKey = create(hsm.WrappedKeySchema, { ...key, wrappedMaterial: moved.wrappedMaterial, rootKeyId: moved.rootKeyId });
    expect(Buffer.from(await token_.decrypt(movedKey, sealed, aad)).toString()).toBe("before");
  }
  // New material goes under the token's set, never under the file.
  const keyVersionId = randomUUID();
  expect((await token_.generateKeyMaterial(KeySpec.AES_256, ProtectionLevel.SOFTWARE, keyVersionId)).rootKeyId).toBe(token_.rootKeyId);
});

it("refuses a forged blob under the file's id, HSM-level rows naming it, and ids it does not know", async () => {
  const key = await fileKey();
  const sealed = await file.encrypt(key, Buffer.from("x"), aad);
  // Another version's id: the file's tag does not match.
  await expect(token_.decrypt({ ...key, keyVersionId: randomUUID() }, sealed, aad)).rejects.toThrow("does not unwrap under the root key");
  // The file never held HSM-level material.
  const hsmLevel = create(hsm.WrappedKeySchema, { ...key, protectionLevel: ProtectionLevel.HSM });
  await expect(token_.decrypt(hsmLevel, sealed, aad)).rejects.toThrow("does not unwrap under the root key");
  await expect(token_.rewrapKey(checkWrappedKey(hsmLevel, "key", token_.accepts()), "key")).rejects.toThrow("does not unwrap under the root key");
  // An id that is neither the token's nor the file's.
  await expect(token_.decrypt({ ...key, rootKeyId: "0".repeat(32) }, sealed, aad)).rejects.toMatchObject({ code: ErrorCode.RootKeyMismatch });
});

it("retiring the file reports it retired and leaves the file alone (the operator deletes it)", async () => {
  const { rootKeyId: fileId } = file.status();
  expect(await token_.retireRoot(fileId)).toBe(true);
  expect(existsSync(path.join(dir, "root-key"))).toBe(true);
  // The token's own current set is still refused.
  await expect(token_.retireRoot(token_.rootKeyId)).rejects.toMatchObject({ code: ErrorCode.RootKeyMismatch });
});

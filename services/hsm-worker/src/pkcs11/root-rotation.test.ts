// Root rotation in the worker (Pkcs11Root.beginRotation, rewrap, retire), with several workers on one token
// as several kms-api replicas have: one switches the root set; the others, which never heard of it, wrap
// new material under the new set (the retiring label is checked before each wrap) and use material that
// names it (an unknown root id makes them read the token again); the old set keeps unwrapping until retired.
import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { ErrorCode, KmsError } from "@kms/errors";
import { kmsResources } from "@kms/proto";
import { hsm } from "@kms/proto/internal";
import { checkWrappedKey } from "../backend";
import { createTestToken } from "../testing/softhsm-token";
import type { TestToken } from "../testing/softhsm-token";
import { wireBackend } from "../testing/wire-backend";
import type { WireBackend } from "../testing/wire-backend";
import { HsmBackend } from "./hsm-backend";
import { HSM_MATERIAL_STAYS } from "./pkcs11-root";

jest.setTimeout(60_000);

const { KeySpec, ProtectionLevel } = kmsResources;
const aad = Buffer.from("aad");

let token: TestToken;
let a: WireBackend<HsmBackend>;
let b: WireBackend<HsmBackend>;
let c: WireBackend<HsmBackend>;

async function open(): Promise<WireBackend<HsmBackend>> {
  return wireBackend(await HsmBackend.open({ module: token.module, tokenLabel: token.label, pin: token.pin, poolSize: 2, rootKeyLabel: "rotating", keyCacheSize: 8 }));
}

async function newKey(backend: WireBackend<HsmBackend>, protectionLevel: kmsResources.ProtectionLevel): Promise<hsm.WrappedKey> {
  const keyVersionId = randomUUID();
  const made = await backend.generateKeyMaterial(KeySpec.AES_256, protectionLevel, keyVersionId);
  return create(hsm.WrappedKeySchema, { keyVersionId, keySpec: KeySpec.AES_256, protectionLevel, wrappedMaterial: made.wrappedMaterial, rootKeyId: made.rootKeyId });
}

beforeAll(async () => {
  token = createTestToken("root-rotation");
  [a, b, c] = [await open(), await open(), await open()];
});

afterAll(async () => {
  for (const x of [a, b, c]) await x?.close();
  token.remove();
});

it("switches, re-wraps what can move, keeps HSM-level material, and retires the old set", async () => {
  const oldId = a.rootKeyId;
  const hsmKey = await newKey(a, ProtectionLevel.HSM);
  const softwareKey = await newKey(a, ProtectionLevel.SOFTWARE);
  const sealedHsm = await a.encrypt(hsmKey, Buffer.from("hsm"), aad);
  const sealedSoftware = await a.encrypt(softwareKey, Buffer.from("software"), aad);

  const { current, retiring } = await a.beginRootRotation(oldId);
  expect(current).not.toBe(oldId);
  expect(retiring).toEqual([oldId]);
  expect(a.rootKeyId).toBe(current);
  // Started again (a run resumed after a crash): the same switch, nothing new made.
  expect(await a.beginRootRotation(oldId)).toEqual({ current, retiring: [oldId] });

  // B never heard of it: its next wrap sees its set relabelled retiring and moves to the new one.
  expect(b.rootKeyId).toBe(oldId);
  expect((await newKey(b, ProtectionLevel.SOFTWARE)).rootKeyId).toBe(current);
  expect(b.status().retiringRootKeyIds).toEqual([oldId]);
  // C neither: material naming the new root makes it read the token again, and it works.
  const underNew = await newKey(a, ProtectionLevel.HSM);
  expect(Buffer.from(await c.decrypt(underNew, await a.encrypt(underNew, Buffer.from("new"), aad), aad)).toString()).toBe("new");
  expect(c.rootKeyId).toBe(current);
  // The old set still unwraps its own material everywhere.
  expect(Buffer.from(await c.decrypt(hsmKey, sealedHsm, aad)).toString()).toBe("hsm");

  const rewrap = (key: hsm.WrappedKey) => a.rewrapKey(checkWrappedKey(key, "key", a.accepts()), "key");
  const moved = await rewrap(softwareKey);
  if (moved.outcome !== "rewrapped") throw new Error(`not re-wrapped: ${moved.outcome}`);
  expect(moved.rootKeyId).toBe(current);
  const movedKey = create(hsm.WrappedKeySchema, { ...softwareKey, wrappedMaterial: moved.wrappedMaterial, rootKeyId: moved.rootKeyId });
  expect(Buffer.from(await b.decrypt(movedKey, sealedSoftware, aad)).toString()).toBe("software");
  expect(await rewrap(hsmKey)).toEqual({ outcome: "retained", problem: HSM_MATERIAL_STAYS });
  expect(await rewrap(underNew)).toEqual({ outcome: "current" });
  // A forged blob under the old set is not "retained": its tag does not verify.
  const forged = create(hsm.WrappedKeySchema, { ...hsmKey, keyVersionId: randomUUID() });
  await expect(rewrap(forged)).rejects.toThrow("does not unwrap under the root key");

  await expect(a.retireRoot(current)).rejects.toMatchObject({ code: ErrorCode.RootKeyMismatch });
  expect(await a.retireRoot(oldId)).toBe(true);
  expect(await a.retireRoot(oldId)).toBe(false);
  expect(a.status().retiringRootKeyIds).toEqual([]);
  const gone = await a.decrypt(hsmKey, sealedHsm, aad).catch((err: unknown) => err);
  expect(gone).toBeInstanceOf(KmsError);
  expect((gone as KmsError).code).toBe(ErrorCode.RootKeyMismatch);
});

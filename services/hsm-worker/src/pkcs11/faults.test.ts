// HSM faults underneath a running backend, on a real SoftHSM2 token: sessions closed or logged out,
// the module finalised, the token taken away and brought back, and the token re-initialised with other
// keys. The pool heals with at most one retry per call; a token without our root key fails closed
// (FAILED_PRECONDITION) and never gets a new root key unless asked (KMS_CREATE_ROOT_KEY).
import { execFileSync } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { create } from "@bufbuild/protobuf";
import { status } from "@grpc/grpc-js";
import { ErrorCode, KmsError } from "@kms/errors";
import { kmsResources } from "@kms/proto";
import { hsm } from "@kms/proto/internal";
import * as pkcs11js from "pkcs11js";
import { createTestToken } from "../testing/softhsm-token";
import type { TestToken } from "../testing/softhsm-token";
import { HsmBackend } from "./hsm-backend";
import type { HsmBackendOptions } from "./hsm-backend";
import { findRootKeys, rootLabels } from "./root-key";
import { wireBackend } from "../testing/wire-backend";
import type { WireBackend } from "../testing/wire-backend";

jest.setTimeout(60_000);

const { KeySpec, ProtectionLevel } = kmsResources;
const ROOT_LABEL = "faults-root";
const aad = Buffer.from("aad");

let token: TestToken;
let options: HsmBackendOptions;
let backend: WireBackend<HsmBackend>;

beforeAll(async () => {
  token = createTestToken("hsm-faults-test");
  options = { module: token.module, tokenLabel: token.label, pin: token.pin, poolSize: 3, rootKeyLabel: ROOT_LABEL, keyCacheSize: 16 };
  backend = wireBackend(await HsmBackend.open({ ...options, createRootKey: true }));
});

afterAll(async () => {
  await backend.close();
  token.remove();
});

async function newKey(id: string, protectionLevel: kmsResources.ProtectionLevel, on = backend): Promise<hsm.WrappedKey> {
  const { wrappedMaterial } = await on.generateKeyMaterial(KeySpec.AES_256, protectionLevel, id);
  return create(hsm.WrappedKeySchema, { keyVersionId: id, keySpec: KeySpec.AES_256, protectionLevel, wrappedMaterial, rootKeyId: on.rootKeyId });
}

async function outcome(promise: Promise<unknown>): Promise<{ status: number; code: string } | "ok"> {
  try {
    await promise;
    return "ok";
  } catch (err) {
    if (err instanceof KmsError) return { status: err.status, code: err.code };
    throw err;
  }
}

/** HSM roots (of root sets) on the token, looked up on a session of our own. */
function rootKeysOnToken(label = rootLabels(ROOT_LABEL).hsm): string[] {
  const lib = backend.lib;
  const session = lib.C_OpenSession(backend.pool.slotId, pkcs11js.CKF_SERIAL_SESSION);
  try {
    try {
      lib.C_Login(session, pkcs11js.CKU_USER, token.pin);
    } catch {
      // already logged in through the pool
    }
    return findRootKeys(lib, session, label).map((k) => k.id);
  } finally {
    lib.C_CloseSession(session);
  }
}

const tokensDir = () => path.join(token.dir, "tokens");
const softhsmUtil = (...args: string[]) =>
  execFileSync("softhsm2-util", args, { env: { ...process.env, SOFTHSM2_CONF: token.confPath }, stdio: "ignore" });

describe("sessions lost underneath the pool", () => {
  it("C_Logout (cached HSM keys become invalid handles): every call still succeeds, one generation later", async () => {
    const hsmKey = await newKey("kv-logout-hsm", ProtectionLevel.HSM);
    const swKey = await newKey("kv-logout-sw", ProtectionLevel.SOFTWARE);
    const sealedHsm = await backend.encrypt(hsmKey, Buffer.from("hsm"), aad); // cached now
    const sealedSw = await backend.encrypt(swKey, Buffer.from("sw"), aad);
    const generation = backend.pool.generation;
    const s = backend.lib.C_OpenSession(backend.pool.slotId, pkcs11js.CKF_SERIAL_SESSION);
    backend.lib.C_Logout(s);
    backend.lib.C_CloseSession(s);
    expect((await backend.decrypt(hsmKey, sealedHsm, aad)).toString()).toBe("hsm");
    expect((await backend.decrypt(swKey, sealedSw, aad)).toString()).toBe("sw");
    expect(await outcome(newKey("kv-after-logout", ProtectionLevel.HSM))).toBe("ok");
    expect(backend.pool.generation).toBe(generation + 1);
  });

  it("C_CloseAllSessions while 24 calls are in flight: all of them succeed", async () => {
    const key = await newKey("kv-close-all", ProtectionLevel.HSM);
    const sealed = await backend.encrypt(key, Buffer.from("x"), aad);
    const calls = Array.from({ length: 24 }, (_, i) =>
      i % 2 === 0 ? backend.decrypt(key, sealed, aad).then((p) => p.toString()) : backend.encrypt(key, Buffer.from("y"), aad).then(() => "y"),
    );
    backend.lib.C_CloseAllSessions(backend.pool.slotId);
    const results = await Promise.all(calls);
    expect(results).toEqual(Array.from({ length: 24 }, (_, i) => (i % 2 === 0 ? "x" : "y")));
  });

  it("module re-initialised (C_Finalize underneath) while calls are in flight: all of them succeed", async () => {
    const key = await newKey("kv-finalize", ProtectionLevel.HSM);
    const sealed = await backend.encrypt(key, Buffer.from("z"), aad);
    const epoch = backend.pool.module.epoch;
    backend.lib.C_Finalize();
    const results = await Promise.all(Array.from({ length: 12 }, () => backend.decrypt(key, sealed, aad).then((p) => p.toString())));
    expect(results).toEqual(Array(12).fill("z"));
    expect(backend.pool.module.epoch).toBe(epoch + 1);
  });
});

describe("the token", () => {
  it("disappears: UNAVAILABLE (retry is safe) while it is gone, served again once it is back", async () => {
    const key = await newKey("kv-gone", ProtectionLevel.HSM);
    const sealed = await backend.encrypt(key, Buffer.from("back"), aad);
    await backend.forgetKeys([key.keyVersionId]); // an unwrapped session object would outlive the token
    renameSync(tokensDir(), `${tokensDir()}.away`);
    mkdirSync(tokensDir());
    try {
      expect(await outcome(backend.decrypt(key, sealed, aad))).toEqual({ status: status.UNAVAILABLE, code: ErrorCode.Unavailable });
      expect(await outcome(backend.generateKeyMaterial(KeySpec.AES_256, ProtectionLevel.HSM, "x"))).toEqual({
        status: status.UNAVAILABLE,
        code: ErrorCode.Unavailable,
      });
    } finally {
      rmSync(tokensDir(), { recursive: true, force: true });
      renameSync(`${tokensDir()}.away`, tokensDir());
    }
    expect((await backend.decrypt(key, sealed, aad)).toString()).toBe("back");
    expect(rootKeysOnToken()).toEqual([backend.rootKeyId]);
  });

  it("re-initialised with other keys: fails closed (no plaintext, no key made) and never creates a root key", async () => {
    const key = await newKey("kv-reinit", ProtectionLevel.HSM);
    const swKey = await newKey("kv-reinit-sw", ProtectionLevel.SOFTWARE);
    const sealed = await backend.encrypt(key, Buffer.from("old data"), aad);
    await backend.forgetKeys([key.keyVersionId, swKey.keyVersionId]);
    const oldRoot = backend.rootKeyId;
    // softhsm2-util --init-token on the same label (same user PIN), then someone else's key on it.
    rmSync(tokensDir(), { recursive: true, force: true });
    mkdirSync(tokensDir());
    softhsmUtil("--init-token", "--free", "--label", token.label, "--so-pin", "5678", "--pin", token.pin);
    const pem = path.join(token.dir, "stranger.pem");
    writeFileSync(pem, generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "pkcs8", format: "pem" }));
    softhsmUtil("--import", pem, "--token", token.label, "--label", "someone-elses-key", "--id", "0102", "--pin", token.pin);

    const precondition = { status: status.FAILED_PRECONDITION, code: ErrorCode.RootKeyMismatch };
    const unavailable = { status: status.UNAVAILABLE, code: ErrorCode.Unavailable };
    // The first call may see the token change (one UNAVAILABLE, retry is safe); from then on it is refused.
    const first = await outcome(backend.decrypt(key, sealed, aad));
    expect([precondition, unavailable]).toContainEqual(first);
    for (const call of [
      () => backend.decrypt(key, sealed, aad),
      () => backend.encrypt(key, Buffer.from("new"), aad),
      () => backend.encrypt(swKey, Buffer.from("new"), aad),
      () => backend.generateKeyMaterial(KeySpec.AES_256, ProtectionLevel.HSM, "x"),
      () => backend.generateKeyMaterial(KeySpec.AES_256, ProtectionLevel.SOFTWARE, "x"),
      () => backend.generateKeyMaterial(KeySpec.HMAC_SHA256, ProtectionLevel.HSM, "x"),
    ]) {
      expect(await outcome(call())).toEqual(precondition);
    }
    expect(backend.rootKeyId).toBe(oldRoot);
    expect(rootKeysOnToken()).toEqual([]);

    // A worker (re)started on it without KMS_CREATE_ROOT_KEY: up, but without a root key.
    const restarted = wireBackend(await HsmBackend.open({ ...options, createRootKey: false }));
    try {
      expect(restarted.rootKeyId).toBe("");
      expect(restarted.status().description).toContain(`NO root key labelled "${ROOT_LABEL}" (failing closed)`);
      expect(await outcome(restarted.generateKeyMaterial(KeySpec.AES_256, ProtectionLevel.HSM, "x"))).toEqual(precondition);
      expect(await outcome(restarted.generateKeyMaterial(KeySpec.RSA_2048, ProtectionLevel.SOFTWARE, "x"))).toEqual(precondition);
      expect(await outcome(restarted.decrypt(key, sealed, aad))).toEqual(precondition);
      expect(rootKeysOnToken()).toEqual([]);
    } finally {
      await restarted.close();
    }

    // Only when asked (first start of a new deployment) is a root key made; old material stays refused.
    const fresh = wireBackend(await HsmBackend.open({ ...options, createRootKey: true }));
    try {
      expect(fresh.rootKeyId).toMatch(/^[0-9a-f]{32}$/);
      expect(fresh.rootKeyId).not.toBe(oldRoot);
      expect(await outcome(fresh.decrypt(key, sealed, aad))).toEqual(precondition);
    } finally {
      await fresh.close();
    }
  });
});

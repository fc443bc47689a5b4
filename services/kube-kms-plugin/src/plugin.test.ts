import { status } from "@grpc/grpc-js";
import { IntegrityError, KmsClientError } from "@kms/client";
import { KubeKmsPlugin, PluginError } from "./plugin";
import type { KmsCalls } from "./plugin";

const KEY = "11111111-2222-4333-8444-555555555555";

/** kms-api as the plugin sees it: a key with a primary version, Encrypt that "wraps" by prefixing. */
function fakeKms() {
  const state = { primary: "v1", down: false, corrupted: false, describes: 0, encrypts: 0 };
  const unavailable = () => new KmsClientError(status.UNAVAILABLE, "No connection established", undefined, undefined);
  const kms: KmsCalls = {
    describeKey: async () => {
      if (state.down) throw unavailable();
      state.describes += 1;
      return { keyMetadata: { keyId: KEY, primaryKeyVersionId: state.primary } } as never;
    },
    encrypt: async (r) => {
      if (state.down) throw unavailable();
      if (state.corrupted) throw new IntegrityError("ciphertext_blob_crc32c", "ciphertext_blob does not match its CRC32C (corrupted on the way?)");
      state.encrypts += 1;
      return { ciphertextBlob: Buffer.concat([Buffer.from(`${state.primary}:`), Buffer.from(r.plaintext as Uint8Array)]), keyId: KEY, keyVersionId: state.primary } as never;
    },
    decrypt: async (r) => {
      if (state.down) throw unavailable();
      const blob = Buffer.from(r.ciphertextBlob as Uint8Array);
      const at = blob.indexOf(":");
      return { plaintext: blob.subarray(at + 1), keyId: KEY, keyVersionId: blob.subarray(0, at).toString() } as never;
    },
  };
  return { kms, state };
}

function setup() {
  const { kms, state } = fakeKms();
  const clock = { now: 0 };
  const log = { info: () => {}, warn: () => {}, debug: () => {} };
  const plugin = new KubeKmsPlugin({ kms, keyId: "alias/k8s", cluster: "c1", log, clock: () => clock.now, keyCacheMs: 1000, healthOkMs: 5000, healthFailMs: 1000 });
  return { plugin, state, clock };
}

describe("KubeKmsPlugin", () => {
  it("reports the primary version as key_id and Encrypt returns the same one", async () => {
    const { plugin } = setup();
    expect(await plugin.status()).toEqual({ version: "v2", healthz: "ok", keyId: `${KEY}/v1` });
    expect((await plugin.encrypt(Buffer.alloc(32, 7), "uid-1")).keyId).toBe(`${KEY}/v1`);
  });

  it("takes a new primary from an Encrypt answer before the next DescribeKey", async () => {
    const { plugin, state } = setup();
    await plugin.status();
    state.primary = "v2";
    const describes = state.describes;
    const encrypted = await plugin.encrypt(Buffer.alloc(32, 7), "uid-2");
    expect([encrypted.keyId, (await plugin.status()).keyId, state.describes - describes]).toEqual([`${KEY}/v2`, `${KEY}/v2`, 0]);
  });

  it("sees a rotation in Status once the key cache expires, and decrypts under both versions", async () => {
    const { plugin, state, clock } = setup();
    const old = await plugin.encrypt(Buffer.alloc(32, 1), "u");
    expect((await plugin.status()).keyId).toBe(`${KEY}/v1`);
    state.primary = "v2";
    // Within the key cache (and the cached health round trip) Status still answers v1.
    expect((await plugin.status()).keyId).toBe(`${KEY}/v1`);
    clock.now += 1000;
    expect((await plugin.status()).keyId).toBe(`${KEY}/v2`);
    expect(Buffer.from(await plugin.decrypt(old.ciphertext, old.keyId, {}, "u"))).toEqual(Buffer.alloc(32, 1));
  });

  it("answers UNAVAILABLE, for the apiserver to retry, when kms-api's answer fails its CRC32C check", async () => {
    const { plugin, state } = setup();
    state.corrupted = true;
    const err = await plugin.encrypt(Buffer.alloc(32), "u").catch((e: unknown) => e);
    expect([err instanceof PluginError, (err as PluginError).code, (err as PluginError).message]).toEqual([
      true,
      status.UNAVAILABLE,
      "kms-api: ciphertext_blob_crc32c: ciphertext_blob does not match its CRC32C (corrupted on the way?)",
    ]);
  });

  it("caches a healthy round trip for healthOkMs and forgets it when a call finds kms-api down", async () => {
    const { plugin, state, clock } = setup();
    expect(await plugin.healthz()).toBe("ok");
    const encrypts = state.encrypts;
    clock.now += 4999;
    expect([await plugin.healthz(), state.encrypts - encrypts]).toEqual(["ok", 0]);
    state.down = true;
    const err = await plugin.encrypt(Buffer.alloc(32), "u").catch((e: unknown) => e);
    expect([err instanceof PluginError, (err as PluginError).code, (err as PluginError).message]).toEqual([true, status.UNAVAILABLE, "kms-api: UNAVAILABLE"]);
    expect(await plugin.status()).toEqual({ version: "v2", healthz: "round trip through kms-api failed: kms-api: UNAVAILABLE", keyId: `${KEY}/v1` });
    state.down = false;
    clock.now += 1000;
    expect(await plugin.healthz()).toBe("ok");
  });

  it("refuses a key_id that does not name the blob's version", async () => {
    const { plugin } = setup();
    const blob = await plugin.encrypt(Buffer.alloc(32, 3), "u");
    const err = await plugin.decrypt(blob.ciphertext, `${KEY}/v9`, {}, "u").catch((e: unknown) => e);
    expect([(err as PluginError).code, (err as PluginError).message]).toEqual([status.INVALID_ARGUMENT, "key_id: does not name the key version of the ciphertext"]);
  });
});

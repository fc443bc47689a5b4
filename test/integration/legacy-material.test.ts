// Issue 15 #1, the upgrade: a token and a database as the release before format 2 left them (one root key
// without an unwrap template, bare RFC 5649 wraps under it, ciphertexts made with those keys). The new
// worker starts on them without KMS_CREATE_ROOT_KEY, creates the per-level roots beside the legacy one,
// and every old row keeps working: old ciphertexts decrypt, the legacy Ed25519 key signs, a key imported
// by the old release can be imported again after its material was deleted, and new versions are format 2.
import { spawnSync } from "node:child_process";
import { constants, createHash, createPublicKey, generateKeyPairSync, publicEncrypt, randomBytes, randomUUID, verify } from "node:crypto";
import path from "node:path";
import postgres from "postgres";
import { kmsResources } from "@kms/proto";
import { startStack } from "../harness";
import type { Stack } from "../harness";
import { makeOldReleaseToken, oldCiphertext } from "../old-release";

jest.setTimeout(180_000);

const { KeySpec, KeyUsage, KeyState, Origin, ProtectionLevel, SigningAlgorithm, WrappingAlgorithm, WrappingKeySpec } = kmsResources;
const REPO = path.resolve(__dirname, "../..");
const RECONCILE = path.join(REPO, "services/kms-api/dist/reconcile.js");
const ED25519_PKCS8_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");

let stack: Stack;
let sql: postgres.Sql;
let legacyRootKeyId: string;

function reconcile(): Record<string, unknown> {
  const env = { ...stack.apiEnv, ...stack.workerEnv, DATABASE_URL: stack.apiEnv.DATABASE_URL };
  const run = spawnSync(process.execPath, [RECONCILE], { env, encoding: "utf8" });
  if (run.status !== 0 && run.status !== 3) throw new Error(`reconcile failed: ${run.stderr}`);
  return JSON.parse(run.stdout) as Record<string, unknown>;
}

const hsmAes = { keyId: randomUUID(), versionId: randomUUID(), material: randomBytes(32) };
const softwareAes = { keyId: randomUUID(), versionId: randomUUID(), material: randomBytes(32) };
const ed25519 = { keyId: randomUUID(), versionId: randomUUID(), pair: generateKeyPairSync("ed25519") };
const imported = { keyId: randomUUID(), versionId: randomUUID(), material: randomBytes(32) };
const context = { app: "legacy" };

beforeAll(async () => {
  stack = await startStack();
  sql = postgres(stack.db.url, { max: 1, onnotice: () => {} });
  // Back to the old release: its token, its rows.
  await stack.worker.stop();
  const seed = ed25519.pair.privateKey.export({ format: "der", type: "pkcs8" }).subarray(ED25519_PKCS8_PREFIX.length);
  const materials = [hsmAes.material, softwareAes.material, Buffer.concat([ED25519_PKCS8_PREFIX, seed]), imported.material];
  const made = makeOldReleaseToken(stack.workerEnv, materials);
  legacyRootKeyId = made.rootKeyId;
  const [hsmBlob, softwareBlob, edBlob, importedBlob] = made.wrapped;

  const rows: [typeof hsmAes | typeof ed25519, number, number, number, Buffer, Buffer | null][] = [
    [hsmAes, KeySpec.AES_256, KeyUsage.ENCRYPT_DECRYPT, ProtectionLevel.HSM, hsmBlob!, null],
    [softwareAes, KeySpec.AES_256, KeyUsage.ENCRYPT_DECRYPT, ProtectionLevel.SOFTWARE, softwareBlob!, null],
    [ed25519, KeySpec.ED25519, KeyUsage.SIGN_VERIFY, ProtectionLevel.HSM, edBlob!, ed25519.pair.publicKey.export({ format: "der", type: "spki" })],
  ];
  for (const [k, spec, usage, level, blob, publicKey] of rows) {
    await sql`INSERT INTO keys (key_id, key_spec, key_usage, protection_level, origin, key_state, creation_time, creator, primary_key_version_id)
              VALUES (${k.keyId}, ${spec}, ${usage}, ${level}, ${Origin.KMS}, ${KeyState.ENABLED}, now(), 'dev', ${k.versionId})`;
    await sql`INSERT INTO key_versions (key_version_id, key_id, creation_time, wrapped_material, root_key_id, public_key)
              VALUES (${k.versionId}, ${k.keyId}, now(), ${blob!}, ${legacyRootKeyId}, ${publicKey})`;
  }
  // An HSM-level key imported by the old release whose material was then deleted (PENDING_IMPORT): the
  // old release recorded the fingerprint of its format 1 wrap.
  const fingerprint = createHash("sha256").update(Buffer.from("kms import fingerprint v1\0")).update(importedBlob!).digest();
  await sql`INSERT INTO keys (key_id, key_spec, key_usage, protection_level, origin, key_state, creation_time, creator, primary_key_version_id)
            VALUES (${imported.keyId}, ${KeySpec.AES_256}, ${KeyUsage.ENCRYPT_DECRYPT}, ${ProtectionLevel.HSM}, ${Origin.EXTERNAL}, ${KeyState.PENDING_IMPORT}, now(), 'dev', NULL)`;
  await sql`INSERT INTO imported_material (key_id, key_version_id, version_creation_time, fingerprint)
            VALUES (${imported.keyId}, ${imported.versionId}, now(), ${fingerprint})`;

  // The upgrade: the new worker (no KMS_CREATE_ROOT_KEY on a restart) and kms-api.
  await stack.startWorker();
  await stack.restartApi();
});

afterAll(async () => {
  await sql?.end();
  await stack?.stop();
});

describe("after the upgrade", () => {
  it("the worker has made a new root set and still accepts the legacy root's rows", () => {
    expect(stack.worker.status.legacyRootKeyId).toBe(legacyRootKeyId);
    expect(stack.worker.status.rootKeyId).toMatch(/^[0-9a-f]{32}$/);
    expect(stack.worker.status.rootKeyId).not.toBe(legacyRootKeyId);
  });

  it.each([
    ["HSM", hsmAes],
    ["SOFTWARE", softwareAes],
  ] as const)("decrypts the old release's ciphertexts under its %s-level key, and encrypts with it", async (_n, k) => {
    const blob = oldCiphertext(k.material, k.versionId, `old secret ${_n}`, context);
    const out = await stack.client.decrypt({ ciphertextBlob: blob, encryptionContext: context });
    expect([Buffer.from(out.plaintext).toString(), out.keyId, out.keyVersionId]).toEqual([`old secret ${_n}`, k.keyId, k.versionId]);
    const fresh = await stack.client.encrypt({ keyId: k.keyId, plaintext: Buffer.from("new"), encryptionContext: context });
    expect(Buffer.from((await stack.client.decrypt({ ciphertextBlob: fresh.ciphertextBlob, encryptionContext: context })).plaintext).toString()).toBe("new");
  });

  it("signs with the old release's HSM-level Ed25519 key", async () => {
    const message = Buffer.from("legacy ed25519");
    const signed = await stack.client.asymmetricSign({ keyId: ed25519.keyId, algorithm: SigningAlgorithm.ED25519, input: { case: "message", value: message } });
    expect(verify(null, message, ed25519.pair.publicKey, signed.value)).toBe(true);
  });

  it("rotates a legacy key into a format 2 version under the new root; old ciphertexts still decrypt", async () => {
    const blob = oldCiphertext(hsmAes.material, hsmAes.versionId, "before rotation", context);
    const rotated = await stack.client.createKeyVersion({ keyId: hsmAes.keyId });
    const newVersion = rotated.keyVersion!.keyVersionId;
    const [row] = await sql<{ rootKeyId: string; length: number }[]>`
      SELECT root_key_id AS "rootKeyId", length(wrapped_material) AS length FROM key_versions WHERE key_version_id = ${newVersion}`;
    expect(row).toEqual({ rootKeyId: stack.worker.status.rootKeyId, length: 73 });
    const fresh = await stack.client.encrypt({ keyId: hsmAes.keyId, plaintext: Buffer.from("after"), encryptionContext: context });
    expect(fresh.keyVersionId).toBe(newVersion);
    expect(Buffer.from((await stack.client.decrypt({ ciphertextBlob: fresh.ciphertextBlob, encryptionContext: context })).plaintext).toString()).toBe("after");
    expect(Buffer.from((await stack.client.decrypt({ ciphertextBlob: blob, encryptionContext: context })).plaintext).toString()).toBe("before rotation");
  });

  it("imports again, as the same version, material the old release imported and fingerprinted", async () => {
    const params = await stack.client.getParametersForImport({
      keyId: imported.keyId,
      wrappingAlgorithm: WrappingAlgorithm.RSAES_OAEP_SHA_256,
      wrappingKeySpec: WrappingKeySpec.RSA_2048,
    });
    const wrap = (material: Buffer) =>
      publicEncrypt({ key: createPublicKey(params.publicKey), padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" }, material);
    const done = await stack.client.importKeyMaterial({ keyId: imported.keyId, importToken: params.importToken, encryptedKeyMaterial: wrap(imported.material) });
    expect(done.keyMetadata?.keyState).toBe(KeyState.ENABLED);
    const blob = oldCiphertext(imported.material, imported.versionId, "imported long ago", context);
    expect(Buffer.from((await stack.client.decrypt({ ciphertextBlob: blob, encryptionContext: context })).plaintext).toString()).toBe("imported long ago");
  });

  it("leaves the reconciler nothing to report: legacy rows are usable, the new roots are no strays", () => {
    expect(reconcile()).toMatchObject({ ok: true, unusableVersions: [], strayHsmObjects: [], keysWithoutPrimary: [] });
  });
});

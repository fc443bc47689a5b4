// Issue 15 #1, the upgrade: a token and a database as the release before format 2 left them (one root key
// without an unwrap template, bare RFC 5649 wraps under it, ciphertexts made with those keys). The new
// worker starts on them without KMS_CREATE_ROOT_KEY, creates the per-level roots beside the legacy one,
// and every old row keeps working: old ciphertexts decrypt, the legacy Ed25519 key signs, a key imported
// by the old release can be imported again after its material was deleted, and new versions are format 2.
import { spawnSync } from "node:child_process";
import { constants, createCipheriv, createHash, createPublicKey, generateKeyPairSync, publicEncrypt, randomBytes, randomUUID, verify } from "node:crypto";
import path from "node:path";
import postgres from "postgres";
import { assembleBlob, buildAad, encodeHeader } from "@kms/ciphertext";
import { kmsResources } from "@kms/proto";
import { startStack } from "../harness";
import type { Stack } from "../harness";

jest.setTimeout(180_000);

const { KeySpec, KeyUsage, KeyState, Origin, ProtectionLevel, SigningAlgorithm, WrappingAlgorithm, WrappingKeySpec } = kmsResources;
const REPO = path.resolve(__dirname, "../..");
const RECONCILE = path.join(REPO, "services/kms-api/dist/reconcile.js");
const ED25519_PKCS8_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");

/**
 * Run with the worker's environment while the worker is stopped: empties the token, makes the old
 * release's root key (its generateRootKey template) and wraps each material under it as that release
 * did (C_WrapKey, CKM_AES_KEY_WRAP_PAD, of an object holding the raw key or PKCS#8).
 */
const OLD_RELEASE_TOKEN = `
const pkcs11js = require("pkcs11js");
const fs = require("node:fs");
const crypto = require("node:crypto");
const lib = new pkcs11js.PKCS11();
lib.load(process.env.KMS_PKCS11_MODULE);
lib.C_Initialize();
try {
  const slot = lib.C_GetSlotList(true).find((s) => lib.C_GetTokenInfo(s).label.trim() === process.env.KMS_PKCS11_TOKEN_LABEL);
  const session = lib.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
  lib.C_Login(session, pkcs11js.CKU_USER, fs.readFileSync(process.env.KMS_PKCS11_PIN_FILE, "utf8").replace(/\\n$/, ""));
  lib.C_FindObjectsInit(session, [{ type: pkcs11js.CKA_TOKEN, value: true }]);
  for (const h of lib.C_FindObjects(session, 64)) lib.C_DestroyObject(session, h);
  lib.C_FindObjectsFinal(session);
  const id = crypto.randomBytes(16);
  const root = lib.C_GenerateKey(session, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
    { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
    { type: pkcs11js.CKA_VALUE_LEN, value: 32 },
    { type: pkcs11js.CKA_TOKEN, value: true },
    { type: pkcs11js.CKA_PRIVATE, value: true },
    { type: pkcs11js.CKA_SENSITIVE, value: true },
    { type: pkcs11js.CKA_EXTRACTABLE, value: false },
    { type: pkcs11js.CKA_WRAP, value: true },
    { type: pkcs11js.CKA_UNWRAP, value: true },
    { type: pkcs11js.CKA_ENCRYPT, value: false },
    { type: pkcs11js.CKA_DECRYPT, value: false },
    { type: pkcs11js.CKA_SIGN, value: false },
    { type: pkcs11js.CKA_VERIFY, value: false },
    { type: pkcs11js.CKA_LABEL, value: process.env.KMS_ROOT_KEY_LABEL || "kms-root-wrapping-key" },
    { type: pkcs11js.CKA_ID, value: id },
  ]);
  const wrapped = JSON.parse(process.env.LEGACY_MATERIAL).map((hex) => {
    const object = lib.C_CreateObject(session, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
      { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_GENERIC_SECRET },
      { type: pkcs11js.CKA_VALUE, value: Buffer.from(hex, "hex") },
      { type: pkcs11js.CKA_TOKEN, value: false },
      { type: pkcs11js.CKA_SENSITIVE, value: true },
      { type: pkcs11js.CKA_EXTRACTABLE, value: true },
    ]);
    const out = lib.C_WrapKey(session, { mechanism: pkcs11js.CKM_AES_KEY_WRAP_PAD }, root, object, Buffer.alloc(4096));
    lib.C_DestroyObject(session, object);
    return Buffer.from(out).toString("hex");
  });
  process.stdout.write(JSON.stringify({ rootKeyId: id.toString("hex"), wrapped }));
} finally {
  lib.C_Finalize();
}
`;

let stack: Stack;
let sql: postgres.Sql;
let legacyRootKeyId: string;

/** The old release's ciphertext blob: header ‖ AES-256-GCM under `material` with AAD over the header and context. */
function oldCiphertext(material: Buffer, keyVersionId: string, plaintext: string, context: Record<string, string>): Buffer {
  const header = encodeHeader(keyVersionId);
  const iv = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", material, iv);
  cipher.setAAD(buildAad(header, context));
  const ct = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
  return assembleBlob(header, Buffer.concat([iv, ct, cipher.getAuthTag()]));
}

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
  const run = spawnSync(process.execPath, ["-e", OLD_RELEASE_TOKEN], {
    cwd: REPO,
    env: { ...stack.workerEnv, LEGACY_MATERIAL: JSON.stringify(materials.map((m) => m.toString("hex"))) },
    encoding: "utf8",
  });
  if (run.status !== 0) throw new Error(`old release token setup failed: ${run.stderr}`);
  const made = JSON.parse(run.stdout) as { rootKeyId: string; wrapped: string[] };
  legacyRootKeyId = made.rootKeyId;
  const [hsmBlob, softwareBlob, edBlob, importedBlob] = made.wrapped.map((h) => Buffer.from(h, "hex"));

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

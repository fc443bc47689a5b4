// Key import (bring your own key) through the real processes: material wrapped with the openssl CLI exactly
// as docs/import.md says, imported, used, deleted, re-imported and expired. Token and material expiry are
// driven by an injected clock (in-process replicas on the same Postgres and worker), never by sleeping.
import { execFileSync } from "node:child_process";
import { createDecipheriv, createHmac, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { status } from "@grpc/grpc-js";
import postgres from "postgres";
import { buildAad, parseBlob } from "@kms/ciphertext";
import { kmsResources } from "@kms/proto";
import { errorCode, grpcError, startStack } from "../harness";
import type { KmsClient, Stack } from "../harness";
import { fakeClock, inProcessReplica } from "../in-process";

jest.setTimeout(180_000);

const { KeySpec, KeyState, KeyUsage, Origin, ProtectionLevel, WrappingAlgorithm, WrappingKeySpec } = kmsResources;
type Algorithm = kmsResources.WrappingAlgorithm;

let stack: Stack;
let softwareStack: Stack;
let workDir: string;
const clock = fakeClock(new Date("2030-01-01T00:00:00Z"));
let a: Awaited<ReturnType<typeof inProcessReplica>>;
let b: Awaited<ReturnType<typeof inProcessReplica>>;

beforeAll(async () => {
  workDir = mkdtempSync(path.join(os.tmpdir(), "kms-import-"));
  [stack, softwareStack] = await Promise.all([startStack(), startStack({ hsm: false })]);
  a = await inProcessReplica(stack, clock);
  b = await inProcessReplica(stack, clock);
});
afterAll(async () => {
  await a?.close();
  await b?.close();
  await Promise.all([stack?.stop(), softwareStack?.stop()]);
  rmSync(workDir, { recursive: true, force: true });
});

const sh = (script: string, cwd: string) => execFileSync("sh", ["-euc", script], { cwd, stdio: ["ignore", "pipe", "pipe"] });

/** The docs/import.md recipe, step for step, with the openssl CLI: material.bin → wrapped.bin. */
function wrapWithOpenssl(publicKeyPem: string, algorithm: Algorithm, material: Buffer): Buffer {
  const dir = mkdtempSync(path.join(workDir, "recipe-"));
  writeFileSync(path.join(dir, "wrap.pem"), publicKeyPem);
  writeFileSync(path.join(dir, "material.bin"), material);
  if (algorithm === WrappingAlgorithm.RSAES_OAEP_SHA_256) {
    sh(
      "openssl pkeyutl -encrypt -pubin -inkey wrap.pem -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256 -in material.bin -out wrapped.bin",
      dir,
    );
  } else if (algorithm === WrappingAlgorithm.RSAES_OAEP_SHA_1) {
    sh("openssl pkeyutl -encrypt -pubin -inkey wrap.pem -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha1 -pkeyopt rsa_mgf1_md:sha1 -in material.bin -out wrapped.bin", dir);
  } else {
    sh(
      [
        "openssl rand -out ephemeral.bin 32",
        "openssl pkeyutl -encrypt -pubin -inkey wrap.pem -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256 -in ephemeral.bin -out ephemeral.wrapped",
        'openssl enc -id-aes256-wrap-pad -K "$(od -An -tx1 -v ephemeral.bin | tr -d \' \\n\')" -iv A65959A6 -in material.bin -out material.wrapped',
        "cat ephemeral.wrapped material.wrapped > wrapped.bin",
        "rm ephemeral.bin",
      ].join("\n"),
      dir,
    );
  }
  const wrapped = readFileSync(path.join(dir, "wrapped.bin"));
  rmSync(dir, { recursive: true, force: true });
  return wrapped;
}

async function externalKey(client: KmsClient, protectionLevel: kmsResources.ProtectionLevel, keySpec = KeySpec.AES_256, keyUsage = KeyUsage.ENCRYPT_DECRYPT) {
  return (await client.createKey({ origin: Origin.EXTERNAL, protectionLevel, keySpec, keyUsage })).keyMetadata!;
}

async function parameters(client: KmsClient, keyId: string, algorithm: Algorithm, wrappingKeySpec = WrappingKeySpec.RSA_2048) {
  return client.getParametersForImport({ keyId, wrappingAlgorithm: algorithm, wrappingKeySpec });
}

/** GetParametersForImport → openssl → ImportKeyMaterial. */
async function importMaterial(client: KmsClient, keyId: string, material: Buffer, algorithm: Algorithm = WrappingAlgorithm.RSAES_OAEP_SHA_256, expire?: Date) {
  const params = await parameters(client, keyId, algorithm);
  return client.importKeyMaterial({
    keyId,
    importToken: params.importToken,
    encryptedKeyMaterial: wrapWithOpenssl(params.publicKey, algorithm, material),
    ...(expire ? { keyMaterialExpireTime: timestampFromDate(expire) } : {}),
  });
}

/** Opens a ciphertext blob with node:crypto and the material itself: proof the key is that material. */
function openLocally(material: Buffer, blob: Uint8Array, context: Record<string, string> = {}): Buffer {
  const { header, sealed } = parseBlob(blob);
  const decipher = createDecipheriv(material.length === 32 ? "aes-256-gcm" : "aes-128-gcm", material, sealed.subarray(0, 12));
  decipher.setAAD(buildAad(header, context));
  decipher.setAuthTag(sealed.subarray(sealed.length - 16));
  return Buffer.concat([decipher.update(sealed.subarray(12, sealed.length - 16)), decipher.final()]);
}

async function expectError(promise: Promise<unknown>, code: status, kmsCode: string, message?: string | RegExp) {
  const err = await grpcError(promise);
  expect([err.code, errorCode(err.metadata)]).toEqual([code, kmsCode]);
  if (typeof message === "string") expect(err.details).toBe(message);
  else if (message) expect(err.details).toMatch(message);
  return err;
}

const ALGORITHMS = [
  ["RSAES_OAEP_SHA_256", WrappingAlgorithm.RSAES_OAEP_SHA_256],
  ["RSAES_OAEP_SHA_1", WrappingAlgorithm.RSAES_OAEP_SHA_1],
  ["RSA_AES_KEY_WRAP_SHA_256", WrappingAlgorithm.RSA_AES_KEY_WRAP_SHA_256],
] as const;

it("CreateKey with ORIGIN_EXTERNAL waits in PENDING_IMPORT with no version", async () => {
  const meta = await externalKey(stack.client, ProtectionLevel.HSM);
  expect([meta.origin, meta.keyState, meta.primaryKeyVersionId, meta.materialExpireTime]).toEqual([Origin.EXTERNAL, KeyState.PENDING_IMPORT, "", undefined]);
  expect((await stack.client.listKeyVersions({ keyId: meta.keyId })).keyVersions).toEqual([]);
  await expectError(stack.client.encrypt({ keyId: meta.keyId, plaintext: Buffer.from("x") }), status.FAILED_PRECONDITION, "Rejected.PendingImport");
});

describe.each([
  ["HSM worker, PROTECTION_LEVEL_HSM", () => stack, ProtectionLevel.HSM],
  ["HSM worker, PROTECTION_LEVEL_SOFTWARE", () => stack, ProtectionLevel.SOFTWARE],
  ["software-root worker, PROTECTION_LEVEL_SOFTWARE", () => softwareStack, ProtectionLevel.SOFTWARE],
] as const)("%s", (_name, stackOf, level) => {
  it.each(ALGORITHMS)("imports AES-256 material wrapped by openssl with %s, and uses it", async (_algorithmName, algorithm) => {
    const { client } = stackOf();
    const keyId = (await externalKey(client, level)).keyId;
    const material = randomBytes(32);
    const params = await parameters(client, keyId, algorithm);
    expect(params.keyId).toBe(keyId);
    expect(params.publicKey).toMatch(/^-----BEGIN PUBLIC KEY-----\n/);
    expect(params.importToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const imported = (
      await client.importKeyMaterial({ keyId, importToken: params.importToken, encryptedKeyMaterial: wrapWithOpenssl(params.publicKey, algorithm, material) })
    ).keyMetadata!;
    expect([imported.keyState, imported.protectionLevel, imported.materialExpireTime]).toEqual([KeyState.ENABLED, level, undefined]);
    expect(imported.primaryKeyVersionId).toMatch(/^[0-9a-f-]{36}$/);

    const { ciphertextBlob, keyVersionId } = await client.encrypt({ keyId, plaintext: Buffer.from("imported"), encryptionContext: { t: "1" } });
    expect(keyVersionId).toBe(imported.primaryKeyVersionId);
    expect(Buffer.from((await client.decrypt({ ciphertextBlob, encryptionContext: { t: "1" } })).plaintext).toString()).toBe("imported");
    expect(openLocally(material, ciphertextBlob, { t: "1" }).toString()).toBe("imported");

    const dataKey = await client.generateDataKey({ keyId });
    expect(dataKey.plaintext.length).toBe(32);
    expect(openLocally(material, dataKey.ciphertextBlob).equals(Buffer.from(dataKey.plaintext))).toBe(true);
    expect(Buffer.from((await client.decrypt({ ciphertextBlob: dataKey.ciphertextBlob })).plaintext).equals(Buffer.from(dataKey.plaintext))).toBe(true);
  });
});

it("refuses PROTECTION_LEVEL_HSM for an external key when the worker has no HSM", async () => {
  await expectError(
    softwareStack.client.createKey({ origin: Origin.EXTERNAL, protectionLevel: ProtectionLevel.HSM }),
    status.FAILED_PRECONDITION,
    "Rejected.HsmUnsupported",
  );
});

it("DeleteKeyMaterial returns the key to PENDING_IMPORT; only the same material comes back, under the same version", async () => {
  const keyId = (await externalKey(stack.client, ProtectionLevel.HSM)).keyId;
  const material = randomBytes(32);
  const versionId = (await importMaterial(stack.client, keyId, material)).keyMetadata!.primaryKeyVersionId;
  const { ciphertextBlob } = await stack.client.encrypt({ keyId, plaintext: Buffer.from("before") });

  const deleted = (await stack.client.deleteKeyMaterial({ keyId })).keyMetadata!;
  expect([deleted.keyState, deleted.primaryKeyVersionId]).toEqual([KeyState.PENDING_IMPORT, ""]);
  expect((await stack.client.listKeyVersions({ keyId })).keyVersions).toEqual([]);
  const pending = `key ${keyId} is KEY_STATE_PENDING_IMPORT`;
  await expectError(stack.client.encrypt({ keyId, plaintext: Buffer.from("x") }), status.FAILED_PRECONDITION, "Rejected.PendingImport", pending);
  await expectError(stack.client.generateDataKey({ keyId }), status.FAILED_PRECONDITION, "Rejected.PendingImport", pending);
  // Old ciphertexts say why they cannot be opened now, rather than looking invalid.
  await expectError(stack.client.decrypt({ ciphertextBlob }), status.FAILED_PRECONDITION, "Rejected.PendingImport", pending);
  // Deleting again changes nothing.
  expect((await stack.client.deleteKeyMaterial({ keyId })).keyMetadata!.keyState).toBe(KeyState.PENDING_IMPORT);

  await expectError(
    importMaterial(stack.client, keyId, randomBytes(32)),
    status.INVALID_ARGUMENT,
    "Rejected.IncorrectKeyMaterial",
    `encrypted_key_material: is not the material key ${keyId} was imported with; a key's material never changes`,
  );
  expect((await stack.client.describeKey({ keyId })).keyMetadata!.keyState).toBe(KeyState.PENDING_IMPORT);

  const back = (await importMaterial(stack.client, keyId, material, WrappingAlgorithm.RSA_AES_KEY_WRAP_SHA_256)).keyMetadata!;
  expect([back.keyState, back.primaryKeyVersionId]).toEqual([KeyState.ENABLED, versionId]);
  expect(Buffer.from((await stack.client.decrypt({ ciphertextBlob })).plaintext).toString()).toBe("before");
});

it("accepts the same material again while the key has it (a new expiry time) and refuses other material", async () => {
  const keyId = (await externalKey(a.client, ProtectionLevel.SOFTWARE)).keyId;
  const material = randomBytes(32);
  const first = (await importMaterial(a.client, keyId, material)).keyMetadata!;
  const expire = new Date(clock.now.getTime() + 30 * 86_400_000);
  const again = (await importMaterial(a.client, keyId, material, WrappingAlgorithm.RSAES_OAEP_SHA_1, expire)).keyMetadata!;
  expect([again.keyState, again.primaryKeyVersionId, again.materialExpireTime]).toEqual([KeyState.ENABLED, first.primaryKeyVersionId, timestampFromDate(expire)]);
  await expectError(importMaterial(a.client, keyId, randomBytes(32)), status.INVALID_ARGUMENT, "Rejected.IncorrectKeyMaterial");
  await a.client.disableKey({ keyId });
  expect((await importMaterial(a.client, keyId, material)).keyMetadata!.keyState).toBe(KeyState.DISABLED);
});

describe("import tokens", () => {
  it("are single-use", async () => {
    const keyId = (await externalKey(stack.client, ProtectionLevel.HSM)).keyId;
    const material = randomBytes(32);
    const params = await parameters(stack.client, keyId, WrappingAlgorithm.RSAES_OAEP_SHA_256);
    const encryptedKeyMaterial = wrapWithOpenssl(params.publicKey, WrappingAlgorithm.RSAES_OAEP_SHA_256, material);
    await stack.client.importKeyMaterial({ keyId, importToken: params.importToken, encryptedKeyMaterial });
    await stack.client.deleteKeyMaterial({ keyId });
    await expectError(
      stack.client.importKeyMaterial({ keyId, importToken: params.importToken, encryptedKeyMaterial }),
      status.INVALID_ARGUMENT,
      "Rejected.ImportTokenUsed",
      "import_token: was already used; call GetParametersForImport again",
    );
  });

  it("are for their own key only, and must have been issued here", async () => {
    const keyId = (await externalKey(stack.client, ProtectionLevel.HSM)).keyId;
    const other = (await externalKey(stack.client, ProtectionLevel.HSM)).keyId;
    const params = await parameters(stack.client, other, WrappingAlgorithm.RSAES_OAEP_SHA_256);
    const encryptedKeyMaterial = wrapWithOpenssl(params.publicKey, WrappingAlgorithm.RSAES_OAEP_SHA_256, randomBytes(32));
    await expectError(
      stack.client.importKeyMaterial({ keyId, importToken: params.importToken, encryptedKeyMaterial }),
      status.INVALID_ARGUMENT,
      "InvalidImportToken",
      "import_token: was issued for another key",
    );
    await expectError(
      stack.client.importKeyMaterial({ keyId, importToken: randomBytes(32).toString("base64url"), encryptedKeyMaterial }),
      status.INVALID_ARGUMENT,
      "InvalidImportToken",
      "import_token: was not issued by this service",
    );
    // The refused attempts did not use the token up: it still imports into its own key.
    expect((await stack.client.importKeyMaterial({ keyId: other, importToken: params.importToken, encryptedKeyMaterial })).keyMetadata!.keyState).toBe(
      KeyState.ENABLED,
    );
  });

  it("expire after 24 hours", async () => {
    const keyId = (await externalKey(a.client, ProtectionLevel.HSM)).keyId;
    const params = await parameters(a.client, keyId, WrappingAlgorithm.RSAES_OAEP_SHA_256);
    const issued = clock.now.getTime();
    expect(params.tokenExpireTime).toEqual(timestampFromDate(new Date(issued + 86_400_000)));
    const encryptedKeyMaterial = wrapWithOpenssl(params.publicKey, WrappingAlgorithm.RSAES_OAEP_SHA_256, randomBytes(32));
    clock.now = new Date(issued + 86_400_000);
    await expectError(
      b.client.importKeyMaterial({ keyId, importToken: params.importToken, encryptedKeyMaterial }),
      status.INVALID_ARGUMENT,
      "Rejected.ImportTokenExpired",
      `import_token: expired at ${new Date(issued + 86_400_000).toISOString()}; call GetParametersForImport again`,
    );
    clock.now = new Date(issued + 86_400_000 - 1000);
    expect((await b.client.importKeyMaterial({ keyId, importToken: params.importToken, encryptedKeyMaterial })).keyMetadata!.keyState).toBe(KeyState.ENABLED);
  });

  it("keep working across a worker restart and from another replica", async () => {
    const keyId = (await externalKey(stack.client, ProtectionLevel.HSM)).keyId;
    const material = randomBytes(32);
    const params = await parameters(stack.client, keyId, WrappingAlgorithm.RSAES_OAEP_SHA_1, WrappingKeySpec.RSA_3072);
    await stack.worker.stop();
    await stack.startWorker();
    const encryptedKeyMaterial = wrapWithOpenssl(params.publicKey, WrappingAlgorithm.RSAES_OAEP_SHA_1, material);
    const replica = await stack.startReplica();
    const imported = (await replica.client.importKeyMaterial({ keyId, importToken: params.importToken, encryptedKeyMaterial })).keyMetadata!;
    expect(imported.keyState).toBe(KeyState.ENABLED);
    // Through the replica that imported: stack.client cached the key as PENDING_IMPORT above and would
    // see the import only when the replica's NOTIFY arrives (replica-consistency.test.ts's subject).
    const { ciphertextBlob } = await replica.client.encrypt({ keyId, plaintext: Buffer.from("restart") });
    expect(openLocally(material, ciphertextBlob).toString()).toBe("restart");
  });
});

describe("refusals", () => {
  it("material of the wrong length for the key spec, without using the token up", async () => {
    const keyId = (await externalKey(stack.client, ProtectionLevel.HSM, KeySpec.AES_128)).keyId;
    const params = await parameters(stack.client, keyId, WrappingAlgorithm.RSAES_OAEP_SHA_256);
    await expectError(
      stack.client.importKeyMaterial({ keyId, importToken: params.importToken, encryptedKeyMaterial: wrapWithOpenssl(params.publicKey, WrappingAlgorithm.RSAES_OAEP_SHA_256, randomBytes(32)) }),
      status.INVALID_ARGUMENT,
      "InvalidParameter",
      "encrypted_key_material: key material must be 16 bytes for KEY_SPEC_AES_128, got 32",
    );
    const material = randomBytes(16);
    await stack.client.importKeyMaterial({ keyId, importToken: params.importToken, encryptedKeyMaterial: wrapWithOpenssl(params.publicKey, WrappingAlgorithm.RSAES_OAEP_SHA_256, material) });
    const { ciphertextBlob } = await stack.client.encrypt({ keyId, plaintext: Buffer.from("aes-128") });
    expect(openLocally(material, ciphertextBlob).toString()).toBe("aes-128");
  });

  it("material wrapped for another algorithm, with one message", async () => {
    const keyId = (await externalKey(stack.client, ProtectionLevel.HSM)).keyId;
    const params = await parameters(stack.client, keyId, WrappingAlgorithm.RSAES_OAEP_SHA_256);
    await expectError(
      stack.client.importKeyMaterial({ keyId, importToken: params.importToken, encryptedKeyMaterial: wrapWithOpenssl(params.publicKey, WrappingAlgorithm.RSAES_OAEP_SHA_1, randomBytes(32)) }),
      status.INVALID_ARGUMENT,
      "InvalidParameter",
      "encrypted_key_material: does not decrypt with the import token's wrapping key",
    );
  });

  it("import operations on keys the KMS generated, and a past expiry time", async () => {
    const keyId = (await stack.client.createKey({})).keyMetadata!.keyId;
    await expectError(parameters(stack.client, keyId, WrappingAlgorithm.RSAES_OAEP_SHA_256), status.FAILED_PRECONDITION, "Rejected.KeyUsage");
    await expectError(stack.client.deleteKeyMaterial({ keyId }), status.FAILED_PRECONDITION, "Rejected.KeyUsage");
    await expectError(
      stack.client.getParametersForImport({ keyId, wrappingAlgorithm: WrappingAlgorithm.RSAES_OAEP_SHA_256 }),
      status.INVALID_ARGUMENT,
      "InvalidParameter",
      "wrapping_key_spec: must be RSA_2048, RSA_3072 or RSA_4096",
    );
    const external = (await externalKey(stack.client, ProtectionLevel.HSM)).keyId;
    await expectError(
      importMaterial(stack.client, external, randomBytes(32), WrappingAlgorithm.RSAES_OAEP_SHA_256, new Date(Date.now() - 1000)),
      status.INVALID_ARGUMENT,
      "InvalidParameter",
      /^key_material_expire_time: must be in the future/,
    );
  });
});

it("returns the key to PENDING_IMPORT when its material expires (the job, two replicas racing)", async () => {
  const keyId = (await externalKey(a.client, ProtectionLevel.HSM)).keyId;
  const material = randomBytes(32);
  const expire = new Date(clock.now.getTime() + 2 * 86_400_000);
  const imported = (await importMaterial(a.client, keyId, material, WrappingAlgorithm.RSA_AES_KEY_WRAP_SHA_256, expire)).keyMetadata!;
  expect(imported.materialExpireTime).toEqual(timestampFromDate(expire));
  const { ciphertextBlob } = await a.client.encrypt({ keyId, plaintext: Buffer.from("expiring") });

  clock.advanceDays(1);
  await Promise.all([a.jobs.runOnce(), b.jobs.runOnce()]);
  expect((await a.client.describeKey({ keyId })).keyMetadata!.keyState).toBe(KeyState.ENABLED);

  clock.advanceDays(1);
  await Promise.all([a.jobs.runOnce(), b.jobs.runOnce()]);
  const expired = (await b.client.describeKey({ keyId })).keyMetadata!;
  expect([expired.keyState, expired.primaryKeyVersionId, expired.materialExpireTime]).toEqual([KeyState.PENDING_IMPORT, "", undefined]);
  expect((await a.client.listKeyVersions({ keyId })).keyVersions).toEqual([]);
  await expectError(b.client.encrypt({ keyId, plaintext: Buffer.from("x") }), status.FAILED_PRECONDITION, "Rejected.PendingImport");
  // The expiry committed with its audit row (once, however many replicas raced), as the service's own change.
  const sql = postgres(stack.db.url, { max: 1, onnotice: () => {} });
  try {
    const rows = await sql`SELECT principal, key_version_id FROM audit_events WHERE key_id = ${keyId} AND operation = 'ImportedMaterialExpiry'`;
    expect(rows.map((r) => [r.principal, r.key_version_id])).toEqual([["kms:system", imported.primaryKeyVersionId]]);
  } finally {
    await sql.end();
  }

  const back = (await importMaterial(b.client, keyId, material)).keyMetadata!;
  expect([back.keyState, back.primaryKeyVersionId]).toEqual([KeyState.ENABLED, imported.primaryKeyVersionId]);
  expect(Buffer.from((await a.client.decrypt({ ciphertextBlob })).plaintext).toString()).toBe("expiring");
});

it("imports an HMAC key and an EC P-256 private key (PKCS#8 with RSA_AES_KEY_WRAP) made by openssl", async () => {
  const hmacKeyId = (await externalKey(stack.client, ProtectionLevel.HSM, KeySpec.HMAC_SHA256, KeyUsage.GENERATE_VERIFY_MAC)).keyId;
  const hmacMaterial = randomBytes(32);
  await importMaterial(stack.client, hmacKeyId, hmacMaterial);
  const { mac } = await stack.client.generateMac({ keyId: hmacKeyId, message: Buffer.from("m") });
  expect(Buffer.from(mac).equals(createHmac("sha256", hmacMaterial).update("m").digest())).toBe(true);

  const dir = mkdtempSync(path.join(workDir, "ec-"));
  sh("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ec.pem && openssl pkcs8 -topk8 -nocrypt -in ec.pem -outform DER -out ec.der && openssl pkey -in ec.pem -pubout -out ec-pub.pem", dir);
  const ecKeyId = (await externalKey(stack.client, ProtectionLevel.HSM, KeySpec.EC_P256, KeyUsage.SIGN_VERIFY)).keyId;
  await importMaterial(stack.client, ecKeyId, readFileSync(path.join(dir, "ec.der")), WrappingAlgorithm.RSA_AES_KEY_WRAP_SHA_256);
  expect((await stack.client.getPublicKey({ keyId: ecKeyId })).publicKey).toBe(readFileSync(path.join(dir, "ec-pub.pem"), "utf8"));
  const message = Buffer.from("signed by an imported key");
  const { value } = await stack.client.asymmetricSign({ keyId: ecKeyId, algorithm: kmsResources.SigningAlgorithm.ECDSA_SHA_256, input: { case: "message", value: message } });
  writeFileSync(path.join(dir, "message"), message);
  writeFileSync(path.join(dir, "signature"), value);
  expect(sh("openssl dgst -sha256 -verify ec-pub.pem -signature signature message", dir).toString()).toBe("Verified OK\n");
  rmSync(dir, { recursive: true, force: true });
});

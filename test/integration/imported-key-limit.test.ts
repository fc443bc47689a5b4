// Finding 11: imported key material cannot rotate by use, so nothing stopped encryptions under it past
// the AES-GCM bound for random IVs (2^32 per key). Now a version of an imported key refuses every kind
// of encryption once it has made KMS_IMPORTED_KEY_MAX_ENCRYPTIONS (6 here, to reach it), counting what
// other replicas flushed to Postgres; decryption goes on.
import { constants, publicEncrypt, randomBytes } from "node:crypto";
import { status } from "@grpc/grpc-js";
import { connect } from "@kms/db";
import { kmsResources } from "@kms/proto";
import { errorCode, grpcError, startStack } from "../harness";
import type { KmsClient, Stack } from "../harness";

jest.setTimeout(120_000);

const { KeySpec, Origin, ProtectionLevel, WrappingAlgorithm, WrappingKeySpec } = kmsResources;
const LIMIT = 6;

let stack: Stack;
beforeAll(async () => {
  stack = await startStack({ env: { KMS_IMPORTED_KEY_MAX_ENCRYPTIONS: String(LIMIT) } });
});
afterAll(() => stack?.stop());

/** An ORIGIN_EXTERNAL AES-256 key with fresh material imported (RSAES-OAEP-SHA-256 wrapping). */
async function importedKey(client: KmsClient): Promise<{ keyId: string; keyVersionId: string }> {
  const created = (await client.createKey({ origin: Origin.EXTERNAL, protectionLevel: ProtectionLevel.SOFTWARE, keySpec: KeySpec.AES_256 })).keyMetadata!;
  const params = await client.getParametersForImport({
    keyId: created.keyId,
    wrappingAlgorithm: WrappingAlgorithm.RSAES_OAEP_SHA_256,
    wrappingKeySpec: WrappingKeySpec.RSA_2048,
  });
  const encryptedKeyMaterial = publicEncrypt({ key: params.publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" }, randomBytes(32));
  const imported = (await client.importKeyMaterial({ keyId: created.keyId, importToken: params.importToken, encryptedKeyMaterial })).keyMetadata!;
  return { keyId: created.keyId, keyVersionId: imported.primaryKeyVersionId };
}

const refusal = (keyId: string, keyVersionId: string) =>
  `key ${keyId}: key version ${keyVersionId} has made ${LIMIT} encryptions, the most one AES-GCM key may make with random IVs (KMS_IMPORTED_KEY_MAX_ENCRYPTIONS); imported material cannot rotate by use: import new material into a new key and encrypt under it (Decrypt under this key still works)`;

async function expectRefused(call: Promise<unknown>, keyId: string, keyVersionId: string): Promise<void> {
  const err = await grpcError(call);
  expect([err.code, errorCode(err.metadata), err.details]).toEqual([status.FAILED_PRECONDITION, "Rejected.EncryptionLimit", refusal(keyId, keyVersionId)]);
}

describe("an imported key's version at KMS_IMPORTED_KEY_MAX_ENCRYPTIONS", () => {
  it("refuses Encrypt, GenerateDataKey(WithoutPlaintext), ReEncrypt to it and batch items past the limit; Decrypt goes on", async () => {
    const c = stack.client;
    const { keyId, keyVersionId } = await importedKey(c);
    const generated = (await c.createKey({})).keyMetadata!.keyId;
    const elsewhere = (await c.encrypt({ keyId: generated, plaintext: Buffer.from("moved") })).ciphertextBlob;

    // LIMIT - 1 encryptions of every kind…
    const blobs = [(await c.encrypt({ keyId, plaintext: Buffer.from("e1") })).ciphertextBlob];
    const dataKey = await c.generateDataKey({ keyId, numberOfBytes: 32 });
    await c.generateDataKeyWithoutPlaintext({ keyId, numberOfBytes: 32 });
    const moved = await c.reEncrypt({ ciphertextBlob: elsewhere, destinationKeyId: keyId });
    expect(moved.keyVersionId).toBe(keyVersionId);
    await c.encrypt({ keyId, plaintext: Buffer.from("e5") });
    // …then a batch of three for the one encryption left: exactly one item gets it.
    const batch = await c.batchEncrypt({ items: [1, 2, 3].map((i) => ({ keyId, plaintext: Buffer.from(`b${i}`) })) });
    const outcomes = batch.results.map((r) => [r.status!.code, r.status!.errorCode, r.status!.message]);
    expect(outcomes.filter(([code]) => code === status.OK)).toHaveLength(1);
    expect(outcomes.filter(([code]) => code !== status.OK)).toEqual([
      [status.FAILED_PRECONDITION, "Rejected.EncryptionLimit", refusal(keyId, keyVersionId)],
      [status.FAILED_PRECONDITION, "Rejected.EncryptionLimit", refusal(keyId, keyVersionId)],
    ]);

    // Old code: every one of these succeeded, for ever.
    await expectRefused(c.encrypt({ keyId, plaintext: Buffer.from("e7") }), keyId, keyVersionId);
    await expectRefused(c.generateDataKey({ keyId, numberOfBytes: 32 }), keyId, keyVersionId);
    await expectRefused(c.generateDataKeyWithoutPlaintext({ keyId, numberOfBytes: 32 }), keyId, keyVersionId);
    await expectRefused(c.reEncrypt({ ciphertextBlob: elsewhere, destinationKeyId: keyId }), keyId, keyVersionId);

    // What it made still decrypts, and ReEncrypt away from it works.
    expect(Buffer.from((await c.decrypt({ ciphertextBlob: blobs[0]! })).plaintext).toString()).toBe("e1");
    expect(Buffer.from((await c.decrypt({ ciphertextBlob: dataKey.ciphertextBlob })).plaintext)).toEqual(Buffer.from(dataKey.plaintext));
    expect(Buffer.from((await c.decrypt({ ciphertextBlob: moved.ciphertextBlob })).plaintext).toString()).toBe("moved");
    expect((await c.reEncrypt({ ciphertextBlob: blobs[0]!, destinationKeyId: generated })).keyId).toBe(generated);
  });

  it("counts what other replicas flushed to Postgres: a fresh replica refuses a version they used up", async () => {
    const { keyId, keyVersionId } = await importedKey(stack.client);
    // Other replicas' flushed counts, as the database holds them.
    const sql = connect(stack.db.url, { max: 1 });
    try {
      await sql`UPDATE key_versions SET encryptions = ${LIMIT - 1} WHERE key_version_id = ${keyVersionId}`;
    } finally {
      await sql.end();
    }
    const { client } = await stack.startReplica();
    await client.encrypt({ keyId, plaintext: Buffer.from("last one") });
    await expectRefused(client.encrypt({ keyId, plaintext: Buffer.from("one too many") }), keyId, keyVersionId);
  });

  it("does not limit keys the KMS generated (they rotate by use instead)", async () => {
    const keyId = (await stack.client.createKey({})).keyMetadata!.keyId;
    for (let i = 0; i < LIMIT * 2; i++) await stack.client.encrypt({ keyId, plaintext: Buffer.from(`g${i}`) });
    expect((await stack.client.encrypt({ keyId, plaintext: Buffer.from("more") })).keyId).toBe(keyId);
  });
});

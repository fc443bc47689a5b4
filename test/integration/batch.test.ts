// BatchEncrypt / BatchDecrypt / BatchGenerateDataKey through the real processes: a result per item with
// its own status, one audit row per item.
import { status } from "@grpc/grpc-js";
import postgres from "postgres";
import { kmsResources } from "@kms/proto";
import { grpcError, startStack } from "../harness";
import type { Stack } from "../harness";

const { ProtectionLevel } = kmsResources;
let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(async () => {
  await stack?.stop();
});

it("gives each item its own outcome, in order, and an audit row each", async () => {
  const c = stack.client;
  const hsmKey = (await c.createKey({ protectionLevel: ProtectionLevel.HSM })).keyMetadata!.keyId;
  const swKey = (await c.createKey({ protectionLevel: ProtectionLevel.SOFTWARE })).keyMetadata!.keyId;
  const items = Array.from({ length: 100 }, (_, i) => ({
    keyId: i % 2 ? hsmKey : swKey,
    plaintext: Buffer.from(`item ${i}`),
    encryptionContext: { i: String(i) },
  }));
  items[7] = { keyId: "00000000-0000-4000-8000-000000000000", plaintext: Buffer.from("x"), encryptionContext: { i: "7" } };
  items[8] = { keyId: swKey, plaintext: Buffer.alloc(0), encryptionContext: { i: "8" } };

  const enc = await c.batchEncrypt({ items });
  expect(enc.results.length).toBe(100);
  expect(enc.results[7]!.status).toMatchObject({ code: status.NOT_FOUND, errorCode: "Forbidden.KeyNotFound" });
  expect(enc.results[8]!.status).toMatchObject({
    code: status.INVALID_ARGUMENT,
    errorCode: "InvalidParameter",
    message: "items[8].plaintext: must be 1 to 6144 bytes, got 0",
  });
  const ok = enc.results.filter((r) => r.status!.code === 0);
  expect(ok.length).toBe(98);

  const blobs = enc.results.map((r, i) => ({ ciphertextBlob: r.response?.ciphertextBlob ?? new Uint8Array(), encryptionContext: { i: String(i) } }));
  blobs[3] = { ...blobs[3]!, encryptionContext: { i: "wrong" } };
  const dec = await c.batchDecrypt({ items: blobs });
  dec.results.forEach((r, i) => {
    if (i === 3 || i === 7 || i === 8) {
      expect(r.status).toMatchObject({ code: status.INVALID_ARGUMENT, errorCode: "InvalidCiphertext", message: "ciphertext or encryption context is invalid" });
      expect(r.response).toBeUndefined();
    } else {
      expect(r.status!.code).toBe(0);
      expect(Buffer.from(r.response!.plaintext).toString()).toBe(`item ${i}`);
    }
  });

  const keys = await c.batchGenerateDataKey({ items: [{ keyId: hsmKey }, { keyId: swKey, numberOfBytes: 16 }, { keyId: hsmKey, numberOfBytes: 2000 }] });
  expect(keys.results.map((r) => r.status!.code)).toEqual([0, 0, status.INVALID_ARGUMENT]);
  expect(keys.results[1]!.response!.plaintext.length).toBe(16);
  const back = await c.decrypt({ ciphertextBlob: keys.results[0]!.response!.ciphertextBlob });
  expect(Buffer.from(back.plaintext)).toEqual(Buffer.from(keys.results[0]!.response!.plaintext));

  const sql = postgres(stack.db.url, { max: 1, onnotice: () => {} });
  try {
    const rows = await sql<{ operation: string; n: number }[]>`
      SELECT operation, count(*)::int AS n FROM audit_events WHERE request_id LIKE '%/%' GROUP BY operation ORDER BY operation`;
    expect(rows.map((r) => [r.operation, r.n])).toEqual([
      ["BatchDecrypt", 100],
      ["BatchEncrypt", 100],
      ["BatchGenerateDataKey", 3],
    ]);
  } finally {
    await sql.end();
  }
});

it("refuses an empty batch and one over 1000 items", async () => {
  const c = stack.client;
  const keyId = (await c.createKey({ protectionLevel: ProtectionLevel.SOFTWARE })).keyMetadata!.keyId;
  expect((await grpcError(c.batchEncrypt({ items: [] }))).details).toBe("items: must hold 1 to 1000 items, got 0");
  const tooMany = Array.from({ length: 1001 }, () => ({ keyId, plaintext: Buffer.from("x") }));
  const err = await grpcError(c.batchEncrypt({ items: tooMany }));
  expect(err.code).toBe(status.INVALID_ARGUMENT);
  expect(err.details).toBe("items: must hold 1 to 1000 items, got 1001");
});

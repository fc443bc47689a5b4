// @kms/client through the real processes: typed calls, KmsClientError fields, and streaming envelope
// encryption whose data key comes from GenerateDataKey and goes back through Decrypt.
import { randomBytes } from "node:crypto";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { status } from "@grpc/grpc-js";
import { DataKeyCache, KmsClient, KmsClientError, StreamFormatError } from "@kms/client";
import { kmsResources } from "@kms/proto";
import { startStack } from "../harness";
import type { Stack } from "../harness";

let stack: Stack;
let client: KmsClient;
let keyId: string;

beforeAll(async () => {
  stack = await startStack({ hsm: false });
  client = new KmsClient({ address: stack.address, deadlineMs: 5000 });
  keyId = (await client.createKey({ description: "client-it", protectionLevel: kmsResources.ProtectionLevel.SOFTWARE })).keyMetadata!.keyId;
});
afterAll(async () => {
  client?.close();
  await stack?.stop();
});

async function roundTrip(c: KmsClient, plaintext: Buffer, encryptContext: Record<string, string>, decryptContext = encryptContext): Promise<{ ciphertext: Buffer; plaintext: Buffer }> {
  const ciphertext = await collect(Readable.from([plaintext]), c.encryptStream(keyId, encryptContext));
  return { ciphertext, plaintext: await collect(Readable.from([ciphertext]), c.decryptStream(decryptContext)) };
}

async function collect(source: Readable, transform: NodeJS.ReadWriteStream): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(source, transform, new Writable({ write: (b: Buffer, _e, cb) => (out.push(b), cb()) }));
  return Buffer.concat(out);
}

async function failure(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  throw new Error("expected a failure");
}

it("makes typed calls", async () => {
  const { keyMetadata } = await client.describeKey({ keyId });
  expect(keyMetadata?.keyId).toBe(keyId);
  expect(keyMetadata?.keyState).toBe(kmsResources.KeyState.ENABLED);
  const enc = await client.encrypt({ keyId, plaintext: Buffer.from("small secret") });
  const dec = await client.decrypt({ ciphertextBlob: enc.ciphertextBlob });
  expect(Buffer.from(dec.plaintext).toString()).toBe("small secret");
});

it("surfaces NOT_FOUND with the kms-error-code and the request id", async () => {
  const err = await failure(client.describeKey({ keyId: "2b6e0c3a-0000-4000-8000-000000000000" }));
  expect(err).toBeInstanceOf(KmsClientError);
  const e = err as KmsClientError;
  expect(e.code).toBe(status.NOT_FOUND);
  expect(e.kmsErrorCode).toBe("Forbidden.KeyNotFound");
  expect(e.requestId).toMatch(/^[0-9a-f-]{36}$/);
  expect(e.message).toBe('key "2b6e0c3a-0000-4000-8000-000000000000" not found');
});

it("surfaces INVALID_ARGUMENT for a bad ciphertext", async () => {
  const err = (await failure(client.decrypt({ ciphertextBlob: Buffer.from("garbage") }))) as KmsClientError;
  expect(err.code).toBe(status.INVALID_ARGUMENT);
  expect(err.kmsErrorCode).toBe("InvalidCiphertext");
  expect(err.message).toBe("ciphertext or encryption context is invalid");
});

it("streams several MiB through encryptStream and decryptStream", async () => {
  const plaintext = randomBytes(3 * 1024 * 1024 + 17);
  const context = { tenant: "acme" };
  const result = await roundTrip(client, plaintext, context);
  expect(result.plaintext.equals(plaintext)).toBe(true);
  // 49 chunks of 64 KiB (the last one partial), 21 bytes of framing each, plus the header.
  expect(result.ciphertext.length - plaintext.length).toBeGreaterThan(49 * 21);
  expect(result.ciphertext.length - plaintext.length).toBeLessThan(49 * 21 + 512);
});

it("round-trips empty input", async () => {
  const result = await roundTrip(client, Buffer.alloc(0), {});
  expect(result.plaintext.length).toBe(0);
});

it("refuses another encryption context", async () => {
  const { ciphertext } = await roundTrip(client, randomBytes(1000), { a: "1" });
  const mismatch = await failure(collect(Readable.from([ciphertext]), client.decryptStream({ a: "2" })));
  expect(mismatch).toBeInstanceOf(StreamFormatError);
  expect(mismatch.message).toBe("encryption context does not match the stream's");
});

it("detects truncation end to end", async () => {
  const { ciphertext } = await roundTrip(client, randomBytes(200_000), {});
  const err = await failure(collect(Readable.from([ciphertext.subarray(0, ciphertext.length - 100)]), client.decryptStream({})));
  expect(err).toBeInstanceOf(StreamFormatError);
  expect(err.message).toBe("truncated stream: the final chunk is missing (3 chunks read)");
});

it("fails the stream with NOT_FOUND for an unknown key", async () => {
  const err = await failure(collect(Readable.from([Buffer.from("x")]), client.encryptStream("alias/does-not-exist", {})));
  expect(err).toBeInstanceOf(KmsClientError);
  expect((err as KmsClientError).code).toBe(status.NOT_FOUND);
  expect((err as KmsClientError).kmsErrorCode).toBe("Forbidden.AliasNotFound");
});

it("reuses a cached data key across messages when asked to", async () => {
  const cache = new DataKeyCache({ maxAgeMs: 60_000, maxMessages: 3 });
  const cached = new KmsClient({ address: stack.address, dataKeyCache: cache });
  try {
    const headers = new Set<string>();
    for (let i = 0; i < 5; i++) {
      const plaintext = randomBytes(100);
      const result = await roundTrip(cached, plaintext, { n: "1" });
      expect(result.plaintext.equals(plaintext)).toBe(true);
      headers.add(result.ciphertext.subarray(36, 36 + result.ciphertext.readUInt16BE(34)).toString("hex"));
    }
    // 5 messages, at most 3 per data key: 2 GenerateDataKey calls.
    expect([cache.misses, cache.hits]).toEqual([2, 3]);
    expect(headers.size).toBe(2);
  } finally {
    cache.clear();
    cached.close();
  }
});

it("dryRun(): would succeed, or the error the real call would get, and nothing is done", async () => {
  const key = (await client.createKey({ protectionLevel: kmsResources.ProtectionLevel.SOFTWARE })).keyMetadata!.keyId;
  expect(await client.dryRun("encrypt", { keyId: key, plaintext: Buffer.from("x") })).toEqual({ wouldSucceed: true });
  expect(await client.dryRun("createGrant", { keyId: key, granteePrincipal: "cn:bob", operations: ["Encrypt"] })).toEqual({ wouldSucceed: true });
  expect((await client.listGrants({ keyId: key })).grants).toEqual([]);
  const asked = await client.dryRun("asymmetricSign", { keyId: key, algorithm: kmsResources.SigningAlgorithm.ECDSA_SHA_256, input: { case: "digest", value: Buffer.alloc(32) } });
  expect(asked.wouldSucceed).toBe(false);
  if (!asked.wouldSucceed) expect([asked.error.code, asked.error.kmsErrorCode]).toEqual([status.FAILED_PRECONDITION, "Rejected.KeyUsage"]);
  // Called directly with dry_run, the answer is an error, never an empty result.
  const direct = (await failure(client.encrypt({ keyId: key, plaintext: Buffer.from("x"), dryRun: true }))) as KmsClientError;
  expect([direct.code, direct.kmsErrorCode]).toEqual([status.FAILED_PRECONDITION, "DryRunOperation"]);
});

it("creates, lists and retires grants, and passes grant tokens", async () => {
  const key = (await client.createKey({ protectionLevel: kmsResources.ProtectionLevel.SOFTWARE })).keyMetadata!.keyId;
  const { grantId, grantToken } = await client.createGrant({ keyId: key, granteePrincipal: "cn:bob", operations: ["Encrypt"], retiringPrincipal: "cn:carol" });
  expect((await client.listGrants({ keyId: key })).grants.map((g) => [g.grantId, g.granteePrincipal])).toEqual([[grantId, "cn:bob"]]);
  expect((await client.listRetirableGrants({ retiringPrincipal: "cn:carol" })).grants.map((g) => g.grantId)).toContain(grantId);
  // The caller's own key policy allows it anyway; the token is accepted alongside.
  expect((await client.encrypt({ keyId: key, plaintext: Buffer.from("x"), grantTokens: [grantToken] })).keyId).toBe(key);
  expect(await client.retireGrant({ grantToken })).toMatchObject({ grantId, keyId: key });
  expect((await client.listGrants({ keyId: key })).grants).toEqual([]);
});

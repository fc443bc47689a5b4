// The AWS Encryption SDK for JavaScript (@aws-crypto/client-node), unchanged, encrypting and decrypting a
// file with KMS keyrings on CMKs of this service: its client provider returns an AWS SDK KMS client
// pointed at the stack's AWS-compatible listener.
import { randomBytes } from "node:crypto";
import { createReadStream, createWriteStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import { KMS, CreateKeyCommand } from "@aws-sdk/client-kms";
import { CommitmentPolicy, KmsKeyringNode, buildClient, getClient } from "@aws-crypto/client-node";
import { startStack } from "../harness";
import type { Stack } from "../harness";

jest.setTimeout(120_000);

const { encryptStream, decryptStream, encrypt, decrypt } = buildClient(CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT);

type KmsConstructor = Parameters<typeof getClient>[0];

let stack: Stack;
let dir: string;
let clientProvider: ReturnType<typeof getClient>;
let generatorKey: string;
let otherKey: string;

beforeAll(async () => {
  stack = await startStack({ aws: true });
  dir = mkdtempSync(path.join(os.tmpdir(), "kms-esdk-"));
  const a = stack.aws!.access();
  // As a deployment points the Encryption SDK at this service: a client provider with our endpoint.
  // (The Encryption SDK's client types predate exactOptionalPropertyTypes; KMS is the class its own getKmsClient uses.)
  clientProvider = getClient(KMS as unknown as KmsConstructor, { endpoint: a.endpoint, credentials: { accessKeyId: a.accessKeyId, secretAccessKey: a.secretAccessKey } });
  const kms = clientProvider(a.region) as unknown as KMS;
  const arns = await Promise.all(
    ["esdk generator", "esdk second"].map(async (Description) => (await kms.send(new CreateKeyCommand({ Description }))).KeyMetadata!.Arn!),
  );
  [generatorKey, otherKey] = arns as [string, string];
});
afterAll(async () => {
  await stack?.stop();
  rmSync(dir, { recursive: true, force: true });
});

it("encrypts a file with a KMS keyring and decrypts it, the encryption context bound", async () => {
  const keyring = new KmsKeyringNode({ generatorKeyId: generatorKey, clientProvider });
  const plain = path.join(dir, "plain.bin");
  const sealed = path.join(dir, "plain.bin.encrypted");
  const opened = path.join(dir, "plain.bin.decrypted");
  writeFileSync(plain, randomBytes(300 * 1024 + 17));
  await pipeline(createReadStream(plain), encryptStream(keyring, { encryptionContext: { purpose: "test", file: "plain.bin" } }), createWriteStream(sealed));
  expect(readFileSync(sealed).includes(readFileSync(plain).subarray(0, 64))).toBe(false);

  let header: { encryptionContext: Record<string, string>; encryptedDataKeys: readonly { providerId: string; providerInfo: string }[] } | undefined;
  const decryption = decryptStream(keyring).once("MessageHeader", (h) => (header = h));
  await pipeline(createReadStream(sealed), decryption, createWriteStream(opened));
  expect(readFileSync(opened).equals(readFileSync(plain))).toBe(true);
  expect(header!.encryptionContext).toMatchObject({ purpose: "test", file: "plain.bin" });
  expect(header!.encryptedDataKeys.map((k) => [k.providerId, k.providerInfo])).toEqual([["aws-kms", generatorKey]]);
});

it("a message for two CMKs decrypts with a keyring holding either one", async () => {
  const both = new KmsKeyringNode({ generatorKeyId: generatorKey, keyIds: [otherKey], clientProvider });
  const { result } = await encrypt(both, Buffer.from("for two keys"), { encryptionContext: { tenant: "acme" } });
  const second = await decrypt(new KmsKeyringNode({ keyIds: [otherKey], clientProvider }), result);
  expect([second.plaintext.toString(), second.messageHeader.encryptionContext.tenant]).toEqual(["for two keys", "acme"]);
  const first = await decrypt(new KmsKeyringNode({ keyIds: [generatorKey], clientProvider }), result);
  expect(first.plaintext.toString()).toBe("for two keys");
});

it("a keyring on a CMK this service does not have fails to encrypt", async () => {
  const missing = "arn:aws:kms:us-east-1:000000000000:key/00000000-0000-4000-8000-000000000000";
  await expect(encrypt(new KmsKeyringNode({ generatorKeyId: missing, clientProvider }), Buffer.from("x"))).rejects.toThrow(/not found|NotFound/);
});

it("each KMS call of the Encryption SDK has its audit row, under the AWS operation name", async () => {
  const keyId = generatorKey.split("/")[1]!;
  const { events } = await stack.client.listAuditEvents({ keyId, pageSize: 1000 });
  const operations = new Set(events.map((e) => e.operation));
  expect([...operations].sort()).toEqual(["CreateKey", "Decrypt", "GenerateDataKey"]);
  expect(events.every((e) => e.principal === "dev" && e.resultCode === "OK")).toBe(true);
});

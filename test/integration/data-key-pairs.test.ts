// Data key pairs through the real processes (kms-api → hsm-worker → SoftHSM2 / Postgres): for every spec
// the private key that Decrypt gives back signs what the public key verifies (node:crypto, outside the
// service); the blob is an ordinary ciphertext bound to its encryption context; WithoutPlaintext returns
// no private key; a key policy can refuse either RPC; and the CLI and the AWS front make pairs too.
import { spawnSync } from "node:child_process";
import { createPrivateKey, createPublicKey, sign, verify } from "node:crypto";
import path from "node:path";
import { GenerateDataKeyPairCommand, GenerateDataKeyPairWithoutPlaintextCommand } from "@aws-sdk/client-kms";
import { status } from "@grpc/grpc-js";
import { crc32c } from "@kms/integrity";
import { kmsResources } from "@kms/proto";
import { kmsClient } from "../aws-sdk-client";
import { errorCode, grpcError, startStack } from "../harness";
import type { Stack } from "../harness";

const { KeySpec, KeyUsage, ProtectionLevel } = kmsResources;
const CLI = path.join(__dirname, "..", "..", "packages", "cli", "dist", "main.js");
const MESSAGE = Buffer.from("a data key pair signs this");

jest.setTimeout(180_000);

let stack: Stack;
beforeAll(async () => {
  stack = await startStack({ aws: true });
});
afterAll(async () => {
  await stack?.stop();
});

async function symmetricKey(protectionLevel: kmsResources.ProtectionLevel, policy = ""): Promise<string> {
  const { keyMetadata } = await stack.client.createKey({ protectionLevel, policy });
  return keyMetadata!.keyId;
}

/** node:crypto's view of the pair: the kind and size or curve each spec must have. */
const SPECS = [
  ["RSA_2048", KeySpec.RSA_2048, { type: "rsa", modulusLength: 2048 }],
  ["RSA_3072", KeySpec.RSA_3072, { type: "rsa", modulusLength: 3072 }],
  ["RSA_4096", KeySpec.RSA_4096, { type: "rsa", modulusLength: 4096 }],
  ["EC_P256", KeySpec.EC_P256, { type: "ec", namedCurve: "prime256v1" }],
  ["EC_P384", KeySpec.EC_P384, { type: "ec", namedCurve: "secp384r1" }],
  ["EC_P256K", KeySpec.EC_P256K, { type: "ec", namedCurve: "secp256k1" }],
] as const;

describe.each([
  ["HSM", ProtectionLevel.HSM],
  ["SOFTWARE", ProtectionLevel.SOFTWARE],
])("under a %s key", (_level, protectionLevel) => {
  let keyId: string;
  beforeAll(async () => {
    keyId = await symmetricKey(protectionLevel);
  });

  it.each(SPECS)("%s: the decrypted private key and the public key are one pair", async (_name, keyPairSpec, expected) => {
    const encryptionContext = { tenant: "acme", purpose: "data-key-pair" };
    const pair = await stack.client.generateDataKeyPair({ keyId, keyPairSpec, encryptionContext });
    expect(pair.keyId).toBe(keyId);
    expect(pair.keyPairSpec).toBe(keyPairSpec);
    const publicKey = createPublicKey({ key: Buffer.from(pair.publicKey), format: "der", type: "spki" });
    expect({ type: publicKey.asymmetricKeyType, ...pickDetails(publicKey.asymmetricKeyDetails, expected) }).toEqual(expected);

    // The blob is an Encrypt blob of the PKCS#8: Decrypt under the same context gives the same bytes.
    const decrypted = await stack.client.decrypt({ ciphertextBlob: pair.privateKeyCiphertextBlob, encryptionContext });
    expect(decrypted.keyId).toBe(keyId);
    expect(decrypted.keyVersionId).toBe(pair.keyVersionId);
    expect(Buffer.from(decrypted.plaintext).equals(Buffer.from(pair.privateKeyPlaintext))).toBe(true);

    const privateKey = createPrivateKey({ key: Buffer.from(decrypted.plaintext), format: "der", type: "pkcs8" });
    const signature = sign("sha256", MESSAGE, privateKey);
    expect(verify("sha256", MESSAGE, publicKey, signature)).toBe(true);
    expect(verify("sha256", Buffer.from("another message"), publicKey, signature)).toBe(false);
  });

  it("WithoutPlaintext returns no private key, and its blob decrypts to the pair's private key", async () => {
    const pair = await stack.client.generateDataKeyPairWithoutPlaintext({ keyId, keyPairSpec: KeySpec.EC_P256 });
    expect(Object.keys(pair).sort()).toEqual([
      "$typeName",
      "keyId",
      "keyPairSpec",
      "keyVersionId",
      "privateKeyCiphertextBlob",
      "privateKeyCiphertextBlobCrc32c",
      "publicKey",
      "publicKeyCrc32c",
    ]);
    // The bytes come with their CRC32Cs (docs/integrity.md), as every response's do.
    expect([pair.privateKeyCiphertextBlobCrc32c, pair.publicKeyCrc32c]).toEqual([crc32c(pair.privateKeyCiphertextBlob), crc32c(pair.publicKey)]);
    const { plaintext } = await stack.client.decrypt({ ciphertextBlob: pair.privateKeyCiphertextBlob });
    const fromPrivate = createPublicKey(createPrivateKey({ key: Buffer.from(plaintext), format: "der", type: "pkcs8" }));
    expect(fromPrivate.export({ type: "spki", format: "der" }).equals(Buffer.from(pair.publicKey))).toBe(true);
  });

  it("the private key's blob does not decrypt under another encryption context, nor under none", async () => {
    const pair = await stack.client.generateDataKeyPair({ keyId, keyPairSpec: KeySpec.EC_P384, encryptionContext: { tenant: "acme" } });
    for (const encryptionContext of [{ tenant: "globex" }, {}, { tenant: "acme", extra: "x" }]) {
      const err = await grpcError(stack.client.decrypt({ ciphertextBlob: pair.privateKeyCiphertextBlob, encryptionContext }));
      expect([err.code, err.details]).toEqual([status.INVALID_ARGUMENT, "ciphertext or encryption context is invalid"]);
    }
  });
});

function pickDetails(details: object | undefined, expected: object): object {
  const d = (details ?? {}) as Record<string, unknown>;
  return Object.fromEntries(Object.keys(expected).filter((k) => k !== "type").map((k) => [k, d[k]]));
}

describe("refusals", () => {
  it("names the field for a spec that is not a data key pair spec, or none", async () => {
    const keyId = await symmetricKey(ProtectionLevel.SOFTWARE);
    for (const [keyPairSpec, text] of [
      [KeySpec.UNSPECIFIED, "key_pair_spec: is required"],
      [KeySpec.AES_256, "key_pair_spec: KEY_SPEC_AES_256 is not a data key pair spec"],
      [KeySpec.ED25519, "key_pair_spec: KEY_SPEC_ED25519 is not a data key pair spec"],
    ] as const) {
      const err = await grpcError(stack.client.generateDataKeyPair({ keyId, keyPairSpec }));
      expect(err.code).toBe(status.INVALID_ARGUMENT);
      expect(err.details).toContain(text);
    }
  });

  it("needs a symmetric key to encrypt the private key", async () => {
    const { keyMetadata } = await stack.client.createKey({ keySpec: KeySpec.EC_P256, keyUsage: KeyUsage.SIGN_VERIFY, protectionLevel: ProtectionLevel.SOFTWARE });
    const err = await grpcError(stack.client.generateDataKeyPair({ keyId: keyMetadata!.keyId, keyPairSpec: KeySpec.EC_P256 }));
    expect(err.code).toBe(status.FAILED_PRECONDITION);
    expect(err.details).toContain("cannot be used for GenerateDataKeyPair");
  });

  it("follows the key policy: kms:GenerateDataKeyPair and kms:GenerateDataKeyPairWithoutPlaintext are separate actions", async () => {
    const policy = JSON.stringify({
      Version: "1",
      Statement: [
        { Effect: "Allow", Principal: ["dev"], Action: "kms:*", Resource: "*" },
        { Effect: "Deny", Principal: "*", Action: "kms:GenerateDataKeyPair", Resource: "*" },
      ],
    });
    const keyId = await symmetricKey(ProtectionLevel.SOFTWARE, policy);
    const denied = await grpcError(stack.client.generateDataKeyPair({ keyId, keyPairSpec: KeySpec.EC_P256 }));
    expect(denied.code).toBe(status.PERMISSION_DENIED);
    expect(errorCode(denied.metadata)).toBeDefined();
    const allowed = await stack.client.generateDataKeyPairWithoutPlaintext({ keyId, keyPairSpec: KeySpec.EC_P256 });
    expect(allowed.publicKey.length).toBeGreaterThan(0);

    const { events } = await stack.client.listAuditEvents({ keyId });
    const operations = events.map((e) => [e.operation, e.resultCode]);
    expect(operations).toEqual(expect.arrayContaining([["GenerateDataKeyPair", "PERMISSION_DENIED"], ["GenerateDataKeyPairWithoutPlaintext", "OK"]]));
  });
});

describe("other clients", () => {
  it("the CLI prints a pair as JSON", async () => {
    const keyId = await symmetricKey(ProtectionLevel.SOFTWARE);
    const res = spawnSync(process.execPath, [CLI, "--address", stack.address, "--json", "generate-data-key-pair", "--key", keyId, "--spec", "EC_P256K", "--context", "app=cli"]);
    expect({ code: res.status, stderr: res.stderr.toString() }).toEqual({ code: 0, stderr: "" });
    const out = JSON.parse(res.stdout.toString()) as { privateKeyPlaintext: string; privateKeyCiphertextBlob: string; publicKey: string; keyPairSpec: string };
    expect(out.keyPairSpec).toBe("KEY_SPEC_EC_P256K");
    const privateKey = createPrivateKey({ key: Buffer.from(out.privateKeyPlaintext, "base64"), format: "der", type: "pkcs8" });
    expect(createPublicKey(privateKey).export({ type: "spki", format: "der" }).toString("base64")).toBe(out.publicKey);
    const { plaintext } = await stack.client.decrypt({ ciphertextBlob: Buffer.from(out.privateKeyCiphertextBlob, "base64"), encryptionContext: { app: "cli" } });
    expect(Buffer.from(plaintext).toString("base64")).toBe(out.privateKeyPlaintext);

    const without = spawnSync(process.execPath, [CLI, "--address", stack.address, "--json", "generate-data-key-pair", "--key", keyId, "--spec", "RSA_2048", "--without-plaintext"]);
    expect(without.status).toBe(0);
    expect(Object.keys(JSON.parse(without.stdout.toString()) as object)).not.toContain("privateKeyPlaintext");
  });

  it("the AWS SDK's GenerateDataKeyPair and GenerateDataKeyPairWithoutPlaintext", async () => {
    const aws = kmsClient(stack.aws!.access(), { maxAttempts: 1 });
    try {
      const keyId = await symmetricKey(ProtectionLevel.SOFTWARE);
      const pair = await aws.send(new GenerateDataKeyPairCommand({ KeyId: keyId, KeyPairSpec: "ECC_NIST_P256", EncryptionContext: { via: "aws" } }));
      expect(pair.KeyPairSpec).toBe("ECC_NIST_P256");
      expect(pair.KeyId).toBe(`arn:aws:kms:us-east-1:000000000000:key/${keyId}`);
      const privateKey = createPrivateKey({ key: Buffer.from(pair.PrivateKeyPlaintext!), format: "der", type: "pkcs8" });
      expect(createPublicKey(privateKey).export({ type: "spki", format: "der" }).equals(Buffer.from(pair.PublicKey!))).toBe(true);
      const { plaintext } = await stack.client.decrypt({ ciphertextBlob: pair.PrivateKeyCiphertextBlob!, encryptionContext: { via: "aws" } });
      expect(Buffer.from(plaintext).equals(Buffer.from(pair.PrivateKeyPlaintext!))).toBe(true);

      const without = await aws.send(new GenerateDataKeyPairWithoutPlaintextCommand({ KeyId: keyId, KeyPairSpec: "RSA_2048" }));
      expect(without.KeyPairSpec).toBe("RSA_2048");
      expect(without).not.toHaveProperty("PrivateKeyPlaintext");
      expect(without.PublicKey!.length).toBeGreaterThan(0);
    } finally {
      aws.destroy();
    }
  });
});

// Key agreement through the real processes (kms-api → hsm-worker → SoftHSM2 / Postgres): for P-256 and
// P-384, HSM and SOFTWARE, DeriveSharedSecret gives the secret that an outside implementation computes from
// its own private key and the KMS public key from GetPublicKey (node:crypto, and openssl pkeyutl -derive);
// bad peer keys and usage mismatches are refused naming the field; another principal gets PERMISSION_DENIED;
// the audit rows are there without the secret, and neither service logs it; the CLI and the SDK derive too.
import { spawnSync } from "node:child_process";
import { createPublicKey, diffieHellman, ECDH, generateKeyPairSync, randomBytes } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { CreateKeyCommand, DeriveSharedSecretCommand, DescribeKeyCommand, GetPublicKeyCommand } from "@aws-sdk/client-kms";
import { credentials, status } from "@grpc/grpc-js";
import { KmsClient } from "@kms/client";
import type { ServiceProcess } from "@kms/dev-stack";
import { crc32c } from "@kms/integrity";
import { createPromiseClient, kms, kmsResources } from "@kms/proto";
import { kmsClient } from "../aws-sdk-client";
import { issue, makeCa } from "../certs";
import { errorCode, grpcError, startStack } from "../harness";
import type { KmsClient as StackClient, Stack } from "../harness";

const { KeySpec, KeyUsage, ProtectionLevel, KeyAgreementAlgorithm, Origin, SigningAlgorithm } = kmsResources;
const CLI = path.join(__dirname, "..", "..", "packages", "cli", "dist", "main.js");
const BOB = "spiffe://example.org/ns/apps/sa/bob";
const ECDH_ALG = KeyAgreementAlgorithm.ECDH;

jest.setTimeout(180_000);

/** Everything a process writes from now on, with its start-up lines. */
function captureOutput(proc: ServiceProcess): () => string {
  const before = proc.output();
  const chunks: string[] = [];
  for (const stream of [proc.child.stdout, proc.child.stderr]) stream?.on("data", (chunk: Buffer | string) => chunks.push(chunk.toString()));
  return () => `${before}\n${chunks.join("")}`;
}

const encodings = (secret: Buffer) => [secret.toString("hex"), secret.toString("hex").toUpperCase(), secret.toString("base64"), secret.toString("base64url")];
const der = (k: KeyObject) => k.export({ type: "spki", format: "der" });

const pki = makeCa("key-agreement-clients");
const server = issue(pki, "server", { cn: "kms", sans: "IP:127.0.0.1,DNS:localhost" });
const bobCert = issue(pki, "bob", { sans: `URI:${BOB}` });

let stack: Stack;
let bob: StackClient;
let apiOutput: () => string;
let workerOutput: () => string;
let tmp: string;
/** Every shared secret the service answered, to look for in logs and audit rows. */
const secrets: Buffer[] = [];

beforeAll(async () => {
  stack = await startStack({ env: { KMS_LOG_LEVEL: "debug" }, aws: true });
  apiOutput = captureOutput(stack.api);
  workerOutput = captureOutput(stack.worker);
  const replica = await stack.startReplica({ KMS_TLS_CERT: server.cert, KMS_TLS_KEY: server.key, KMS_TLS_CLIENT_CA: pki.caCert, KMS_CREATORS: BOB, KMS_ADMINS: "" });
  replica.client.close();
  const creds = credentials.createSsl(readFileSync(pki.caCert), readFileSync(bobCert.key), readFileSync(bobCert.cert));
  bob = createPromiseClient(kms.KeyManagementService, replica.api.address, creds);
  tmp = mkdtempSync(path.join(os.tmpdir(), "key-agreement-it-"));
});

afterAll(async () => {
  bob?.close();
  await stack?.stop();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

async function agreementKey(keySpec: kmsResources.KeySpec, protectionLevel: kmsResources.ProtectionLevel): Promise<string> {
  const { keyMetadata } = await stack.client.createKey({ keySpec, keyUsage: KeyUsage.KEY_AGREEMENT, protectionLevel });
  expect([keyMetadata!.keyUsage, keyMetadata!.protectionLevel]).toEqual([KeyUsage.KEY_AGREEMENT, protectionLevel]);
  return keyMetadata!.keyId;
}

const CASES = [
  ["HSM", ProtectionLevel.HSM, "P-256", KeySpec.EC_P256, "prime256v1", 32],
  ["HSM", ProtectionLevel.HSM, "P-384", KeySpec.EC_P384, "secp384r1", 48],
  ["SOFTWARE", ProtectionLevel.SOFTWARE, "P-256", KeySpec.EC_P256, "prime256v1", 32],
  ["SOFTWARE", ProtectionLevel.SOFTWARE, "P-384", KeySpec.EC_P384, "secp384r1", 48],
] as const;

describe.each(CASES)("%s level, %s", (_level, protectionLevel, _curve, keySpec, nodeCurve, bytes) => {
  it("both sides agree: KMS with its private key, node:crypto with the peer's and the KMS public key", async () => {
    const keyId = await agreementKey(keySpec, protectionLevel);
    const pub = await stack.client.getPublicKey({ keyId });
    expect([pub.keySpec, pub.keyUsage, pub.keyAgreementAlgorithms]).toEqual([keySpec, KeyUsage.KEY_AGREEMENT, [ECDH_ALG]]);
    const kmsPublic = createPublicKey(pub.publicKey);
    expect(kmsPublic.asymmetricKeyDetails?.namedCurve).toBe(nodeCurve);

    const peer = generateKeyPairSync("ec", { namedCurve: nodeCurve });
    const res = await stack.client.deriveSharedSecret({ keyId, keyAgreementAlgorithm: ECDH_ALG, publicKey: der(peer.publicKey), publicKeyCrc32c: crc32c(der(peer.publicKey)) });
    const outside = diffieHellman({ privateKey: peer.privateKey, publicKey: kmsPublic });
    expect(res.sharedSecret.length).toBe(bytes);
    expect(Buffer.from(res.sharedSecret).equals(outside)).toBe(true);
    expect(res).toMatchObject({ keyId, keyVersionId: pub.keyVersionId, keyAgreementAlgorithm: ECDH_ALG, keyOrigin: Origin.KMS, verifiedPublicKeyCrc32c: true });
    expect(res.sharedSecretCrc32c).toBe(crc32c(res.sharedSecret));
    secrets.push(Buffer.from(res.sharedSecret));

    // Another peer, another secret; the same peer again, the same secret.
    const other = generateKeyPairSync("ec", { namedCurve: nodeCurve });
    const second = await stack.client.deriveSharedSecret({ keyId, keyAgreementAlgorithm: ECDH_ALG, publicKey: der(other.publicKey) });
    expect(Buffer.from(second.sharedSecret).equals(diffieHellman({ privateKey: other.privateKey, publicKey: kmsPublic }))).toBe(true);
    expect(Buffer.from(second.sharedSecret).equals(outside)).toBe(false);
    const again = await stack.client.deriveSharedSecret({ keyId, keyAgreementAlgorithm: ECDH_ALG, publicKey: der(peer.publicKey) });
    expect(Buffer.from(again.sharedSecret).equals(outside)).toBe(true);
    secrets.push(Buffer.from(second.sharedSecret));
  });
});

describe("an outside implementation: openssl pkeyutl -derive", () => {
  it("computes the same secret from its own private key and the KMS public key (HSM, P-384)", async () => {
    const keyId = await agreementKey(KeySpec.EC_P384, ProtectionLevel.HSM);
    const pub = await stack.client.getPublicKey({ keyId });
    const peer = generateKeyPairSync("ec", { namedCurve: "secp384r1" });
    writeFileSync(path.join(tmp, "kms.pem"), pub.publicKey);
    writeFileSync(path.join(tmp, "peer.pem"), peer.privateKey.export({ type: "pkcs8", format: "pem" }), { mode: 0o600 });
    const openssl = spawnSync("openssl", ["pkeyutl", "-derive", "-inkey", path.join(tmp, "peer.pem"), "-peerkey", path.join(tmp, "kms.pem")]);
    expect({ code: openssl.status, stderr: openssl.stderr.toString() }).toEqual({ code: 0, stderr: "" });
    const res = await stack.client.deriveSharedSecret({ keyId, keyAgreementAlgorithm: ECDH_ALG, publicKey: der(peer.publicKey) });
    expect(openssl.stdout.length).toBe(48);
    expect(Buffer.from(res.sharedSecret).equals(openssl.stdout)).toBe(true);
    secrets.push(Buffer.from(res.sharedSecret));
  });
});

describe("refusals", () => {
  let hsmKey: string;
  let softwareKey: string;
  beforeAll(async () => {
    hsmKey = await agreementKey(KeySpec.EC_P256, ProtectionLevel.HSM);
    softwareKey = await agreementKey(KeySpec.EC_P256, ProtectionLevel.SOFTWARE);
  });

  it("refuses bad peer keys with INVALID_ARGUMENT naming public_key, at both levels", async () => {
    const good = der(generateKeyPairSync("ec", { namedCurve: "prime256v1" }).publicKey);
    const offCurve = Buffer.from(good);
    offCurve[offCurve.length - 1]! ^= 1;
    const identity = Buffer.from("3019301306072a8648ce3d020106082a8648ce3d03010703020000", "hex");
    const compressed = Buffer.concat([
      Buffer.from("3039301306072a8648ce3d020106082a8648ce3d030107032200", "hex"),
      ECDH.convertKey(good.subarray(26), "prime256v1", undefined, undefined, "compressed") as Buffer,
    ]);
    const otherCurve = der(generateKeyPairSync("ec", { namedCurve: "secp384r1" }).publicKey);
    const cases: [string, Buffer, string][] = [
      ["off the curve", offCurve, "public_key: is not a point on P-256"],
      ["the identity", identity, "public_key: must be the DER SubjectPublicKeyInfo of an uncompressed P-256 point"],
      ["a compressed point", compressed, "public_key: must be the DER SubjectPublicKeyInfo of an uncompressed P-256 point"],
      ["a point of the other curve", otherCurve, "public_key: is a P-384 key; this key agrees on P-256 only"],
      ["garbage", randomBytes(91), "public_key: must be the DER SubjectPublicKeyInfo"],
      ["nothing", Buffer.alloc(0), "public_key: is required"],
    ];
    for (const keyId of [hsmKey, softwareKey]) {
      for (const [what, publicKey, text] of cases) {
        const err = await grpcError(stack.client.deriveSharedSecret({ keyId, keyAgreementAlgorithm: ECDH_ALG, publicKey }));
        expect({ what, code: err.code, errorCode: errorCode(err.metadata), details: err.details.startsWith(text) }).toEqual({
          what,
          code: status.INVALID_ARGUMENT,
          errorCode: "InvalidParameter",
          details: true,
        });
      }
    }
    // The node never stumbled: a good key still works on both.
    const peer = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
    for (const keyId of [hsmKey, softwareKey]) {
      const res = await stack.client.deriveSharedSecret({ keyId, keyAgreementAlgorithm: ECDH_ALG, publicKey: der(peer.publicKey) });
      secrets.push(Buffer.from(res.sharedSecret));
    }
  });

  it("needs the algorithm", async () => {
    const err = await grpcError(stack.client.deriveSharedSecret({ keyId: hsmKey, publicKey: Buffer.alloc(1) }));
    expect([err.code, err.details]).toEqual([status.INVALID_ARGUMENT, "key_agreement_algorithm: is required: KEY_AGREEMENT_ALGORITHM_ECDH"]);
  });

  it("keeps usages apart: no signing with a KEY_AGREEMENT key, no ECDH with a SIGN_VERIFY key; no KEY_AGREEMENT for secp256k1, RSA or AES", async () => {
    const peer = der(generateKeyPairSync("ec", { namedCurve: "prime256v1" }).publicKey);
    let err = await grpcError(stack.client.asymmetricSign({ keyId: hsmKey, algorithm: SigningAlgorithm.ECDSA_SHA_256, input: { case: "digest", value: Buffer.alloc(32) } }));
    expect([err.code, errorCode(err.metadata)]).toEqual([status.FAILED_PRECONDITION, "Rejected.KeyUsage"]);
    expect(err.details).toContain("KEY_USAGE_KEY_AGREEMENT) cannot be used for AsymmetricSign");
    const { keyMetadata: signing } = await stack.client.createKey({ keySpec: KeySpec.EC_P256, keyUsage: KeyUsage.SIGN_VERIFY, protectionLevel: ProtectionLevel.HSM });
    err = await grpcError(stack.client.deriveSharedSecret({ keyId: signing!.keyId, keyAgreementAlgorithm: ECDH_ALG, publicKey: peer }));
    expect([err.code, errorCode(err.metadata)]).toEqual([status.FAILED_PRECONDITION, "Rejected.KeyUsage"]);
    expect(err.details).toContain("KEY_USAGE_SIGN_VERIFY) cannot be used for DeriveSharedSecret");
    const pub = await stack.client.getPublicKey({ keyId: signing!.keyId });
    expect([pub.keyUsage, pub.keyAgreementAlgorithms]).toEqual([KeyUsage.SIGN_VERIFY, []]);
    for (const keySpec of [KeySpec.EC_P256K, KeySpec.RSA_2048, KeySpec.AES_256]) {
      err = await grpcError(stack.client.createKey({ keySpec, keyUsage: KeyUsage.KEY_AGREEMENT, protectionLevel: ProtectionLevel.SOFTWARE }));
      expect([err.code, err.details]).toEqual([status.INVALID_ARGUMENT, expect.stringContaining("cannot be used with key_usage KEY_USAGE_KEY_AGREEMENT")]);
    }
  });

  it("another principal gets PERMISSION_DENIED and learns nothing else; the audit rows are there, without the secret", async () => {
    const peer = der(generateKeyPairSync("ec", { namedCurve: "prime256v1" }).publicKey);
    const denied = await grpcError(bob.deriveSharedSecret({ keyId: hsmKey, keyAgreementAlgorithm: ECDH_ALG, publicKey: peer }));
    expect(denied.code).toBe(status.PERMISSION_DENIED);
    // A bad peer key from him is refused the same way: the key's policy comes before the input checks.
    const deniedBad = await grpcError(bob.deriveSharedSecret({ keyId: hsmKey, keyAgreementAlgorithm: ECDH_ALG, publicKey: Buffer.from("junk") }));
    expect([deniedBad.code, deniedBad.details]).toEqual([denied.code, denied.details]);
    const ok = await stack.client.deriveSharedSecret({ keyId: hsmKey, keyAgreementAlgorithm: ECDH_ALG, publicKey: peer });
    secrets.push(Buffer.from(ok.sharedSecret));

    const { events } = await stack.client.listAuditEvents({ keyId: hsmKey });
    const rows = events.filter((e) => e.operation === "DeriveSharedSecret").map((e) => [e.principal, e.resultCode]);
    expect(rows).toEqual(expect.arrayContaining([[BOB, "PERMISSION_DENIED"], ["dev", "OK"], ["dev", "INVALID_ARGUMENT"]]));
    const audit = JSON.stringify(events, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v));
    for (const secret of secrets) for (const e of encodings(secret)) expect(audit.includes(e)).toBe(false);
  });
});

describe("other clients", () => {
  it("the CLI: derive-shared-secret with a PEM peer key prints the secret; --json names the algorithm", async () => {
    const keyId = await agreementKey(KeySpec.EC_P256, ProtectionLevel.SOFTWARE);
    const pub = await stack.client.getPublicKey({ keyId });
    const peer = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
    const peerFile = path.join(tmp, "cli-peer.pem");
    writeFileSync(peerFile, peer.publicKey.export({ type: "spki", format: "pem" }));
    const expected = diffieHellman({ privateKey: peer.privateKey, publicKey: createPublicKey(pub.publicKey) });
    const res = spawnSync(process.execPath, [CLI, "--address", stack.address, "derive-shared-secret", "--key", keyId, "--peer-key", peerFile]);
    expect({ code: res.status, stderr: res.stderr.toString() }).toEqual({ code: 0, stderr: "" });
    expect(res.stdout.toString().trim()).toBe(expected.toString("base64"));
    const derFile = path.join(tmp, "cli-peer.der");
    writeFileSync(derFile, der(peer.publicKey));
    const json = spawnSync(process.execPath, [CLI, "--address", stack.address, "--json", "derive-shared-secret", "--key", keyId, "--peer-key", derFile]);
    expect(json.status).toBe(0);
    const out = JSON.parse(json.stdout.toString()) as Record<string, string>;
    expect(out).toMatchObject({ keyId, keyAgreementAlgorithm: "KEY_AGREEMENT_ALGORITHM_ECDH", keyOrigin: "ORIGIN_KMS", sharedSecret: expected.toString("base64") });
    const outFile = path.join(tmp, "cli-secret.bin");
    const raw = spawnSync(process.execPath, [CLI, "--address", stack.address, "derive-shared-secret", "--key", keyId, "--peer-key", peerFile, "--out", outFile]);
    expect([raw.status, raw.stdout.toString()]).toEqual([0, ""]);
    expect(readFileSync(outFile).equals(expected)).toBe(true);
    const bad = spawnSync(process.execPath, [CLI, "--address", stack.address, "derive-shared-secret", "--key", keyId, "--peer-key", path.join(tmp, "kms-missing.pem")]);
    expect(bad.status).not.toBe(0);
    secrets.push(expected);
  });

  it("the SDK: KmsClient.deriveSharedSecret sends and checks the CRC32Cs", async () => {
    const keyId = await agreementKey(KeySpec.EC_P384, ProtectionLevel.HSM);
    const client = new KmsClient({ address: stack.address });
    try {
      const pub = await client.getPublicKey({ keyId });
      const peer = generateKeyPairSync("ec", { namedCurve: "secp384r1" });
      const res = await client.deriveSharedSecret({ keyId, keyAgreementAlgorithm: ECDH_ALG, publicKey: der(peer.publicKey) });
      expect(res.verifiedPublicKeyCrc32c).toBe(true);
      expect(Buffer.from(res.sharedSecret).equals(diffieHellman({ privateKey: peer.privateKey, publicKey: createPublicKey(pub.publicKey) }))).toBe(true);
      secrets.push(Buffer.from(res.sharedSecret));
    } finally {
      client.close();
    }
  });
});

describe("the AWS-compatible API", () => {
  it("CreateKey KeyUsage KEY_AGREEMENT, GetPublicKey and DeriveSharedSecret through @aws-sdk/client-kms", async () => {
    const aws = kmsClient(stack.aws!.access(), { maxAttempts: 1 });
    try {
      const { KeyMetadata } = await aws.send(new CreateKeyCommand({ KeySpec: "ECC_NIST_P384", KeyUsage: "KEY_AGREEMENT" }));
      expect(KeyMetadata).toMatchObject({ KeySpec: "ECC_NIST_P384", KeyUsage: "KEY_AGREEMENT", KeyAgreementAlgorithms: ["ECDH"] });
      expect(KeyMetadata!.SigningAlgorithms).toBeUndefined();
      const keyId = KeyMetadata!.KeyId!;
      const pub = await aws.send(new GetPublicKeyCommand({ KeyId: keyId }));
      expect(pub).toMatchObject({ KeyUsage: "KEY_AGREEMENT", KeySpec: "ECC_NIST_P384", KeyAgreementAlgorithms: ["ECDH"] });
      expect(pub.SigningAlgorithms).toBeUndefined();
      const kmsPublic = createPublicKey({ key: Buffer.from(pub.PublicKey!), format: "der", type: "spki" });
      const peer = generateKeyPairSync("ec", { namedCurve: "secp384r1" });
      const res = await aws.send(new DeriveSharedSecretCommand({ KeyId: keyId, KeyAgreementAlgorithm: "ECDH", PublicKey: der(peer.publicKey) }));
      expect(res).toMatchObject({ KeyId: `arn:aws:kms:us-east-1:000000000000:key/${keyId}`, KeyAgreementAlgorithm: "ECDH", KeyOrigin: "AWS_KMS" });
      expect(Buffer.from(res.SharedSecret!).equals(diffieHellman({ privateKey: peer.privateKey, publicKey: kmsPublic }))).toBe(true);
      secrets.push(Buffer.from(res.SharedSecret!));
      const described = await aws.send(new DescribeKeyCommand({ KeyId: keyId }));
      expect(described.KeyMetadata?.KeyAgreementAlgorithms).toEqual(["ECDH"]);

      const p256 = der(generateKeyPairSync("ec", { namedCurve: "prime256v1" }).publicKey);
      await expect(aws.send(new DeriveSharedSecretCommand({ KeyId: keyId, KeyAgreementAlgorithm: "ECDH", PublicKey: p256 }))).rejects.toMatchObject({
        name: "ValidationException",
        message: expect.stringContaining("is a P-256 key; this key agrees on P-384 only"),
      });
      await expect(aws.send(new DeriveSharedSecretCommand({ KeyId: keyId, KeyAgreementAlgorithm: "ECDH", PublicKey: der(peer.publicKey), DryRun: true }))).rejects.toMatchObject({
        name: "DryRunOperationException",
      });
      const signing = (await aws.send(new CreateKeyCommand({ KeySpec: "ECC_NIST_P384", KeyUsage: "SIGN_VERIFY" }))).KeyMetadata!.KeyId!;
      await expect(aws.send(new DeriveSharedSecretCommand({ KeyId: signing, KeyAgreementAlgorithm: "ECDH", PublicKey: der(peer.publicKey) }))).rejects.toMatchObject({
        name: "InvalidKeyUsageException",
      });
    } finally {
      aws.destroy();
    }
  });
});

describe("logs at debug level", () => {
  it("hold none of the shared secrets", async () => {
    await new Promise((r) => setTimeout(r, 200)); // the last lines
    expect(secrets.length).toBeGreaterThanOrEqual(10);
    const outputs: [string, string][] = [
      ["kms-api", apiOutput()],
      ["hsm-worker", workerOutput()],
    ];
    expect(outputs[0]![1]).toContain("DeriveSharedSecret"); // the debug lines name each call
    for (const [name, output] of outputs) {
      for (const secret of secrets) for (const e of encodings(secret)) expect([name, output.includes(e)]).toEqual([name, false]);
    }
  });
});

// The AWS-compatible listener's authentication, authorization, audit and error answers, through the AWS
// SDK for JavaScript v3 and, where the SDK would never send such a request (a stale date, a tampered body),
// through requests signed by @smithy/signature-v4 (the SDK's own signer) and sent by hand.
import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { Agent } from "node:https";
import * as aws from "@aws-sdk/client-kms";
import type { KMSClient } from "@aws-sdk/client-kms";
import { Hash } from "@smithy/hash-node";
import { SignatureV4 } from "@smithy/signature-v4";
import { newAccessKey, writeAccessKeysFile } from "@kms/dev-stack";
import { startStack } from "../harness";
import type { AwsAccess, Stack } from "../harness";
import { awsError, kmsClient } from "../aws-sdk-client";
import { issue, makeCa } from "../certs";

jest.setTimeout(120_000);

let stack: Stack;
let dev: KMSClient;

beforeAll(async () => {
  stack = await startStack({ aws: { principals: ["alice"] } });
  dev = kmsClient(stack.aws!.access(), { maxAttempts: 1 });
});
afterAll(async () => {
  dev?.destroy();
  await stack?.stop();
});

interface RawAnswer {
  status: number;
  type: string | undefined;
  message: string;
  headers: Record<string, unknown>;
}

/** POSTs `body` to the listener as `target`, signed as the SDK signs (unless `sign` is false), then `tamper`ed. */
async function raw(
  access: AwsAccess,
  target: string,
  body: string,
  o: {
    signingDate?: Date;
    sign?: boolean;
    /** Headers sent but left out of the signature. */
    unsigned?: string[];
    tamper?: (headers: Record<string, string>) => string | void;
    headers?: Record<string, string>;
  } = {},
): Promise<RawAnswer> {
  const url = new URL(access.endpoint);
  let headers: Record<string, string> = { host: url.host, "content-type": "application/x-amz-json-1.1", "x-amz-target": `TrentService.${target}`, ...o.headers };
  if (o.sign !== false) {
    const signer = new SignatureV4({ credentials: access, region: access.region, service: "kms", sha256: Hash.bind(null, "sha256") });
    const signed = await signer.sign({ method: "POST", protocol: "http:", hostname: url.hostname, path: "/", query: {}, headers, body }, {
      signingDate: o.signingDate ?? new Date(),
      unsignableHeaders: new Set(o.unsigned ?? []),
    });
    headers = signed.headers as Record<string, string>;
  }
  const sent = o.tamper?.(headers) ?? body;
  return new Promise((resolve, reject) => {
    const req = request(access.endpoint, { method: o.headers?.["x-method"] ?? "POST", headers: { ...headers, "content-length": Buffer.byteLength(sent) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const json = JSON.parse(Buffer.concat(chunks).toString() || "{}") as { __type?: string; message?: string };
        resolve({ status: res.statusCode ?? 0, type: json.__type, message: json.message ?? "", headers: res.headers });
      });
    });
    req.on("error", reject);
    req.end(sent);
  });
}

describe("SigV4", () => {
  it("a correctly signed request by hand is served", async () => {
    const answer = await raw(stack.aws!.access(), "GenerateRandom", JSON.stringify({ NumberOfBytes: 8 }));
    expect([answer.status, answer.type]).toEqual([200, undefined]);
    expect(answer.headers["x-amzn-requestid"]).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("a wrong secret is InvalidSignatureException, an unknown key or a session token UnrecognizedClientException", async () => {
    const access = stack.aws!.access();
    const wrongSecret = kmsClient({ ...access, secretAccessKey: access.secretAccessKey.replace(/.$/, (c) => (c === "A" ? "B" : "A")) }, { maxAttempts: 1 });
    expect(await awsError(wrongSecret.send(new aws.ListKeysCommand({})))).toMatchObject({ name: "InvalidSignatureException", status: 400 });
    const unknown = kmsClient({ ...access, accessKeyId: "AKIAUNKNOWNUNKNOWN00" }, { maxAttempts: 1 });
    expect(await awsError(unknown.send(new aws.ListKeysCommand({})))).toMatchObject({ name: "UnrecognizedClientException", status: 400 });
    const session = kmsClient(access, { maxAttempts: 1, credentials: { ...access, sessionToken: "FwoGZXIvYXdzE" } });
    expect(await awsError(session.send(new aws.ListKeysCommand({})))).toMatchObject({ name: "UnrecognizedClientException", status: 400 });
    for (const c of [wrongSecret, unknown, session]) c.destroy();
  });

  it("a date more than 15 minutes old is refused; the SDK corrects its clock from our Date header and retries", async () => {
    const access = stack.aws!.access();
    const stale = await raw(access, "ListKeys", "{}", { signingDate: new Date(Date.now() - 20 * 60_000) });
    expect([stale.status, stale.type]).toEqual([400, "InvalidSignatureException"]);
    expect(stale.message).toContain("Signature expired");
    const early = await raw(access, "ListKeys", "{}", { signingDate: new Date(Date.now() + 20 * 60_000) });
    expect(early.type).toBe("InvalidSignatureException");
    const skewed = kmsClient(access, { systemClockOffset: -20 * 60_000, maxAttempts: 3 });
    const answer = await skewed.send(new aws.ListKeysCommand({}));
    expect(answer.$metadata.attempts).toBe(2);
    skewed.destroy();
  });

  it("a body or X-Amz-Target other than the signed one, a false X-Amz-Content-Sha256, an unsigned X-Amz-Target are refused", async () => {
    const access = stack.aws!.access();
    const tampered = await raw(access, "GenerateRandom", JSON.stringify({ NumberOfBytes: 8 }), { tamper: () => JSON.stringify({ NumberOfBytes: 9 }) });
    expect(tampered.type).toBe("InvalidSignatureException");
    const hashed = await raw(access, "GenerateRandom", "{}", { headers: { "x-amz-content-sha256": "0".repeat(64) } });
    expect([hashed.type, hashed.message]).toEqual(["InvalidSignatureException", expect.stringContaining("x-amz-content-sha256")]);
    const otherTarget = await raw(access, "ListKeys", "{}", { tamper: (h) => void (h["x-amz-target"] = "TrentService.GenerateRandom") });
    expect(otherTarget.type).toBe("InvalidSignatureException");
    const unsignedTarget = await raw(access, "ListKeys", "{}", { unsigned: ["x-amz-target"] });
    expect([unsignedTarget.type, unsignedTarget.message]).toEqual(["IncompleteSignatureException", expect.stringContaining("x-amz-target")]);
    const none = await raw(access, "ListKeys", "{}", { sign: false });
    expect([none.status, none.type]).toEqual([400, "MissingAuthenticationTokenException"]);
    const malformed = await raw(access, "ListKeys", "{}", { sign: false, headers: { authorization: "AWS4-HMAC-SHA256 Credential=x" } });
    expect(malformed.type).toBe("IncompleteSignatureException");
  });

  it("failed authentications count against the peer's budget: then ThrottlingException", async () => {
    const replica = await stack.startReplica({ KMS_AUTH_FAILURE_BURST: "2", KMS_AUTH_FAILURES_PER_SECOND: "1" });
    const access = stack.aws!.access("dev", replica.api.awsEndpoint);
    const forged = kmsClient({ ...access, secretAccessKey: "x".repeat(40) }, { maxAttempts: 1 });
    const names: string[] = [];
    for (let i = 0; i < 3; i++) names.push((await awsError(forged.send(new aws.ListKeysCommand({})))).name);
    expect(names).toEqual(["InvalidSignatureException", "InvalidSignatureException", "ThrottlingException"]);
    forged.destroy();
  });
});

describe("HTTPS", () => {
  it("serves HTTPS with the gRPC listener's certificate (KMS_TLS_CERT, KMS_TLS_KEY)", async () => {
    const pki = makeCa("aws-tls");
    const server = issue(pki, "server", { sans: "IP:127.0.0.1" });
    // A TLS gRPC listener needs client authentication or an explicit shared principal; the AWS one has SigV4.
    const replica = await stack.startReplica({ KMS_TLS_CERT: server.cert, KMS_TLS_KEY: server.key, KMS_ANONYMOUS_PRINCIPAL: "grpc-anyone" });
    replica.client.close();
    expect(replica.api.awsEndpoint).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const access = stack.aws!.access("dev", replica.api.awsEndpoint);
    const kms = kmsClient(access, { maxAttempts: 1, requestHandler: { httpsAgent: new Agent({ ca: readFileSync(pki.caCert) }) } });
    expect((await kms.send(new aws.GenerateRandomCommand({ NumberOfBytes: 4 }))).Plaintext!.length).toBe(4);
    kms.destroy();
    const untrusting = kmsClient(access, { maxAttempts: 1 });
    await expect(untrusting.send(new aws.GenerateRandomCommand({ NumberOfBytes: 4 }))).rejects.toThrow(/certificate/);
    untrusting.destroy();
  });
});

describe("requests the AWS JSON protocol never sends", () => {
  it("another method, content type or target, or a body over 1 MiB, is refused before any work", async () => {
    const access = stack.aws!.access();
    expect((await raw(access, "ListKeys", "", { headers: { "x-method": "GET" } })).status).toBe(405);
    expect((await raw(access, "ListKeys", "{}", { headers: { "content-type": "application/json" } })).status).toBe(415);
    expect((await raw(access, "List Keys", "{}", { sign: false })).type).toBe("UnknownOperationException");
    expect((await raw(access, "Encrypt", JSON.stringify({ Plaintext: "A".repeat(1024 * 1024 + 8) }))).status).toBe(413);
  });
});

describe("errors and authorization", () => {
  it("unsupported operations, key specs and features are UnsupportedOperationException naming them", async () => {
    expect(await awsError(dev.send(new aws.ReplicateKeyCommand({ KeyId: "x", ReplicaRegion: "eu-west-1" })))).toMatchObject({
      name: "UnsupportedOperationException",
      message: expect.stringContaining("ReplicateKey"),
    });
    expect(await awsError(dev.send(new aws.CreateKeyCommand({ KeySpec: "ECC_NIST_P521", KeyUsage: "SIGN_VERIFY" })))).toMatchObject({
      name: "UnsupportedOperationException",
      message: expect.stringContaining("ECC_NIST_P521"),
    });
    expect((await awsError(dev.send(new aws.CreateKeyCommand({ MultiRegion: true })))).name).toBe("UnsupportedOperationException");
    expect((await awsError(dev.send(new aws.EncryptCommand({ KeyId: "alias/x", Plaintext: undefined as never })))).name).toBe("ValidationException");
    expect((await awsError(dev.send(new aws.DescribeKeyCommand({ KeyId: "arn:aws:kms:us-east-1:000000000000:nonsense" })))).name).toBe("InvalidArnException");
  });

  it("another principal's key and a key that does not exist get the same AccessDeniedException", async () => {
    const alice = kmsClient(stack.aws!.access("alice"), { maxAttempts: 1 });
    const devKey = (await dev.send(new aws.CreateKeyCommand({}))).KeyMetadata!.KeyId!;
    const forbidden = await awsError(alice.send(new aws.DescribeKeyCommand({ KeyId: devKey })));
    const missing = "00000000-0000-4000-8000-000000000000";
    const absent = await awsError(alice.send(new aws.DescribeKeyCommand({ KeyId: missing })));
    expect([forbidden.name, absent.name]).toEqual(["AccessDeniedException", "AccessDeniedException"]);
    expect(absent.message).toBe(forbidden.message.replace(devKey, missing));
    const own = (await alice.send(new aws.CreateKeyCommand({}))).KeyMetadata!.KeyId!;
    const e = await alice.send(new aws.EncryptCommand({ KeyId: own, Plaintext: Buffer.from("mine") }));
    expect((await awsError(alice.send(new aws.EncryptCommand({ KeyId: devKey, Plaintext: Buffer.from("x") })))).name).toBe("AccessDeniedException");
    expect((await alice.send(new aws.ListKeysCommand({}))).Keys!.map((k) => k.KeyId)).toEqual([own]);
    expect((await dev.send(new aws.DecryptCommand({ CiphertextBlob: e.CiphertextBlob }))).KeyId).toContain(own); // dev is the admin
    alice.destroy();
  });

  it("every call has one audit row with the AWS operation name and the principal; refusals too", async () => {
    const keyId = (await dev.send(new aws.CreateKeyCommand({}))).KeyMetadata!.KeyId!;
    const e = await dev.send(new aws.EncryptCommand({ KeyId: keyId, Plaintext: Buffer.from("audited") }));
    await dev.send(new aws.DecryptCommand({ CiphertextBlob: e.CiphertextBlob }));
    await dev.send(new aws.GetKeyRotationStatusCommand({ KeyId: keyId }));
    await dev.send(new aws.ListKeyPoliciesCommand({ KeyId: keyId }));
    await awsError(dev.send(new aws.DecryptCommand({ CiphertextBlob: e.CiphertextBlob, EncryptionContext: { wrong: "1" } })));
    const { events } = await stack.client.listAuditEvents({ keyId, pageSize: 100 });
    expect(events.map((x) => [x.operation, x.principal, x.resultCode, x.errorCode])).toEqual([
      ["CreateKey", "dev", "OK", ""],
      ["Encrypt", "dev", "OK", ""],
      ["Decrypt", "dev", "OK", ""],
      ["GetKeyRotationStatus", "dev", "OK", ""],
      ["ListKeyPolicies", "dev", "OK", ""],
      ["Decrypt", "dev", "INVALID_ARGUMENT", "InvalidCiphertext"],
    ]);
    const forged = kmsClient({ ...stack.aws!.access(), secretAccessKey: "y".repeat(40) }, { maxAttempts: 1 });
    await awsError(forged.send(new aws.GetParametersForImportCommand({ KeyId: keyId, WrappingAlgorithm: "RSAES_OAEP_SHA_256", WrappingKeySpec: "RSA_2048" })));
    forged.destroy();
    const refused = await stack.client.listAuditEvents({ operation: "GetParametersForImport", pageSize: 10 });
    expect(refused.events.map((x) => [x.principal, x.resultCode, x.errorCode])).toEqual([["", "UNAUTHENTICATED", "Unauthenticated"]]);
  });
});

describe("the access keys file", () => {
  it("is reloaded when it changes and on SIGHUP; a file others may read is not loaded", async () => {
    const keys = stack.aws!.keys;
    const bob = newAccessKey("bob");
    const asBob = kmsClient({ ...stack.aws!.access(), accessKeyId: bob.accessKeyId, secretAccessKey: bob.secretAccessKey, principal: "bob" }, { maxAttempts: 1 });
    const bobCalls = () => asBob.send(new aws.ListAliasesCommand({})).then(() => "OK", (e: Error) => e.name);
    expect(await bobCalls()).toBe("UnrecognizedClientException");
    writeAccessKeysFile(stack.aws!.keysFile, [...keys, bob]);
    expect(await eventually(bobCalls, "OK")).toBe("OK");
    // Readable by others: refused, and the keys loaded before stay in force.
    writeAccessKeysFile(stack.aws!.keysFile, keys);
    chmodSync(stack.aws!.keysFile, 0o644);
    stack.api.kill("SIGHUP");
    expect(await bobCalls()).toBe("OK");
    chmodSync(stack.aws!.keysFile, 0o600);
    writeFileSync(stack.aws!.keysFile, keys.map((k) => `${k.accessKeyId} ${k.secretAccessKey} ${k.principal}`).join("\n") + "\n", { mode: 0o600 });
    stack.api.kill("SIGHUP");
    expect(await eventually(bobCalls, "UnrecognizedClientException")).toBe("UnrecognizedClientException");
    expect((await dev.send(new aws.ListAliasesCommand({}))).$metadata.httpStatusCode).toBe(200);
    asBob.destroy();
  });
});

/** Calls `probe` until it answers `wanted` (at most 50 tries, 100 ms apart): the reload is asynchronous. */
async function eventually(probe: () => Promise<string>, wanted: string): Promise<string> {
  let last = "";
  for (let i = 0; i < 50; i++) {
    last = await probe();
    if (last === wanted) return last;
    await new Promise((r) => setTimeout(r, 100));
  }
  return last;
}

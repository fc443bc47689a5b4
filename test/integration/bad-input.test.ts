// The bad-input catalogue: hostile and malformed requests across the RPCs, each with its documented
// status and stable kms-error-code; the process stays up; no error detail leaks a stack, SQL or key
// bytes; every bad-ciphertext case gets the byte-identical message. Then 2000 mutated blobs through the
// real service (the primitive-level million is services/hsm-worker/src/software/ciphertext-properties.test.ts),
// and the limits (rate limit, request size cap).
import { constants, publicEncrypt, randomBytes, randomUUID } from "node:crypto";
import { Client, credentials, status } from "@grpc/grpc-js";
import type { ServiceError } from "@grpc/grpc-js";
import { INVALID_CIPHERTEXT_MESSAGE } from "@kms/errors";
import { kmsResources } from "@kms/proto";
import { errorCode, grpcError, startStack } from "../harness";
import type { KmsClient, Stack } from "../harness";

jest.setTimeout(180_000);

const { KeySpec, KeyUsage, ProtectionLevel, Origin, DataKeySpec, SigningAlgorithm, WrappingAlgorithm, WrappingKeySpec } = kmsResources;

let stack: Stack;
let c: KmsClient;
const keys = {} as Record<"aes" | "aesHsm" | "other" | "rsaSign" | "ec" | "hmac" | "disabled" | "external", string>;
const blobs = {} as Record<"plain" | "withContext" | "other" | "dataKey", Buffer>;

beforeAll(async () => {
  stack = await startStack();
  c = stack.client;
  const make = async (req: Parameters<KmsClient["createKey"]>[0]) => (await c.createKey(req)).keyMetadata!.keyId;
  keys.aes = await make({});
  keys.aesHsm = await make({ protectionLevel: ProtectionLevel.HSM });
  keys.other = await make({});
  keys.rsaSign = await make({ keySpec: KeySpec.RSA_2048, keyUsage: KeyUsage.SIGN_VERIFY, protectionLevel: ProtectionLevel.SOFTWARE });
  keys.ec = await make({ keySpec: KeySpec.EC_P256, keyUsage: KeyUsage.SIGN_VERIFY, protectionLevel: ProtectionLevel.SOFTWARE });
  keys.hmac = await make({ keySpec: KeySpec.HMAC_SHA256, keyUsage: KeyUsage.GENERATE_VERIFY_MAC });
  keys.disabled = await make({});
  await c.disableKey({ keyId: keys.disabled });
  keys.external = await make({ origin: Origin.EXTERNAL, protectionLevel: ProtectionLevel.SOFTWARE });
  blobs.plain = Buffer.from((await c.encrypt({ keyId: keys.aes, plaintext: Buffer.from("secret") })).ciphertextBlob);
  blobs.withContext = Buffer.from((await c.encrypt({ keyId: keys.aes, plaintext: Buffer.from("secret"), encryptionContext: { tenant: "a" } })).ciphertextBlob);
  blobs.other = Buffer.from((await c.encrypt({ keyId: keys.other, plaintext: Buffer.from("secret") })).ciphertextBlob);
  blobs.dataKey = Buffer.from((await c.generateDataKeyWithoutPlaintext({ keyId: keys.aesHsm, keySpec: DataKeySpec.AES_256 })).ciphertextBlob);
});
afterAll(async () => {
  await stack?.stop();
});

const INVALID = { code: status.INVALID_ARGUMENT, kms: "InvalidParameter" };
const BAD_BLOB = { code: status.INVALID_ARGUMENT, kms: "InvalidCiphertext", message: INVALID_CIPHERTEXT_MESSAGE };
const NOT_FOUND = { code: status.NOT_FOUND, kms: "Forbidden.KeyNotFound" };
const USAGE = { code: status.FAILED_PRECONDITION, kms: "Rejected.KeyUsage" };

interface Case {
  name: string;
  call: () => Promise<unknown>;
  code: status;
  kms: string;
  /** Exact message, or the field the message must start with. */
  message?: string;
  field?: string;
}

function flip(blob: Buffer, index: number): Buffer {
  const b = Buffer.from(blob);
  b[index < 0 ? b.length + index : index]! ^= 0x01;
  return b;
}

const big = (n: number, ch = "x") => ch.repeat(n);
const manyEntries = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, "v"]));
const dec = (ciphertextBlob: Uint8Array, encryptionContext: Record<string, string> = {}) => () => c.decrypt({ ciphertextBlob, encryptionContext });

function catalogue(): Case[] {
  const uuidHeader = (blob: Buffer, id: string) => Buffer.concat([blob.subarray(0, 1), Buffer.from(id.replace(/-/g, ""), "hex"), blob.subarray(17)]);
  const ciphertexts: [string, () => Promise<unknown>][] = [
    ["empty blob", dec(Buffer.alloc(0))],
    ["one byte", dec(Buffer.of(1))],
    ["truncated to the header", dec(blobs.plain.subarray(0, 17))],
    ["truncated by one byte", dec(blobs.plain.subarray(0, blobs.plain.length - 1))],
    ["truncated to the minimum length", dec(blobs.plain.subarray(0, 46))],
    ["extended by one byte", dec(Buffer.concat([blobs.plain, Buffer.of(0)]))],
    ["extended by 1 KiB", dec(Buffer.concat([blobs.plain, randomBytes(1024)]))],
    ["oversized (7000 bytes)", dec(randomBytes(7000))],
    ["bit flip in the version byte", dec(flip(blobs.plain, 0))],
    ["bit flip in the key version id", dec(flip(blobs.plain, 5))],
    ["bit flip in the IV", dec(flip(blobs.plain, 20))],
    ["bit flip in the ciphertext", dec(flip(blobs.plain, 30))],
    ["bit flip in the tag", dec(flip(blobs.plain, -1))],
    ["bit flip in an HSM data key blob", dec(flip(blobs.dataKey, 40))],
    ["format version 2", dec(Buffer.concat([Buffer.of(2), blobs.plain.subarray(1)]))],
    ["format version 0", dec(Buffer.concat([Buffer.of(0), blobs.plain.subarray(1)]))],
    ["forged header: unknown key version", dec(uuidHeader(blobs.plain, randomUUID()))],
    ["forged header: another key's version (cross-key)", dec(uuidHeader(blobs.plain, blobs.other.subarray(1, 17).toString("hex").replace(/^(.{8})(.{4})(.{4})(.{4})(.{12})$/, "$1-$2-$3-$4-$5")))],
    ["forged header: all zero", dec(Buffer.concat([Buffer.of(1), Buffer.alloc(16), blobs.plain.subarray(17)]))],
    ["another key's body under this header", dec(Buffer.concat([blobs.plain.subarray(0, 17), blobs.other.subarray(17)]))],
    ["wrong context (missing)", dec(blobs.withContext)],
    ["wrong context (other value)", dec(blobs.withContext, { tenant: "b" })],
    ["wrong context (extra entry)", dec(blobs.plain, { tenant: "a" })],
    ["wrong context (key case)", dec(blobs.withContext, { Tenant: "a" })],
    ["random bytes of a valid length", dec(Buffer.concat([Buffer.of(1), randomBytes(60)]))],
    ["ReEncrypt of a tampered blob", () => c.reEncrypt({ ciphertextBlob: flip(blobs.plain, 30), destinationKeyId: keys.aes })],
    ["ReEncrypt under the wrong source context", () => c.reEncrypt({ ciphertextBlob: blobs.withContext, sourceEncryptionContext: { tenant: "z" }, destinationKeyId: keys.aes })],
    ["ReEncrypt of a truncated blob", () => c.reEncrypt({ ciphertextBlob: blobs.plain.subarray(0, 20), destinationKeyId: keys.aes })],
  ];
  const cases: Case[] = ciphertexts.map(([name, call]) => ({ name: `Decrypt: ${name}`, call, ...BAD_BLOB }));

  cases.push(
    // Sizes and shapes.
    { name: "Encrypt: empty plaintext", call: () => c.encrypt({ keyId: keys.aes, plaintext: Buffer.alloc(0) }), ...INVALID, field: "plaintext" },
    { name: "Encrypt: 6145-byte plaintext", call: () => c.encrypt({ keyId: keys.aes, plaintext: Buffer.alloc(6145) }), ...INVALID, field: "plaintext" },
    { name: "Encrypt: 1 MiB plaintext", call: () => c.encrypt({ keyId: keys.aes, plaintext: Buffer.alloc(1 << 20) }), ...INVALID, field: "plaintext" },
    { name: "Encrypt: empty context key", call: () => c.encrypt({ keyId: keys.aes, plaintext: Buffer.of(1), encryptionContext: { "": "v" } }), ...INVALID, field: "encryption_context" },
    { name: "Encrypt: 8193-character context", call: () => c.encrypt({ keyId: keys.aes, plaintext: Buffer.of(1), encryptionContext: { k: big(8192) } }), ...INVALID, field: "encryption_context" },
    // Postgres text cannot hold U+0000: refused up front, never a failed audit batch (which would fail others' calls too).
    { name: "Encrypt: NUL in a context value", call: () => c.encrypt({ keyId: keys.aes, plaintext: Buffer.of(1), encryptionContext: { k: "a\u0000b" } }), ...INVALID, field: "encryption_context" },
    { name: "Decrypt: NUL in a context key", call: dec(blobs.plain, { "a\u0000": "v" }), ...INVALID, field: "encryption_context" },
    { name: "CreateKey: NUL in the description", call: () => c.createKey({ description: "a\u0000b" }), ...INVALID, field: "description" },
    { name: "CreateKey: NUL in a tag value", call: () => c.createKey({ tags: { team: "a\u0000" } }), ...INVALID, field: "tags" },
    { name: "Encrypt: 10k-entry context", call: () => c.encrypt({ keyId: keys.aes, plaintext: Buffer.of(1), encryptionContext: manyEntries(10_000) }), ...INVALID, field: "encryption_context" },
    { name: "Decrypt: 10k-entry context", call: dec(blobs.plain, manyEntries(10_000)), ...INVALID, field: "encryption_context" },
    { name: "GenerateDataKey: 10k-entry context", call: () => c.generateDataKey({ keyId: keys.aes, keySpec: DataKeySpec.AES_256, encryptionContext: manyEntries(10_000) }), ...INVALID, field: "encryption_context" },
    { name: "Encrypt: empty key id", call: () => c.encrypt({ keyId: "", plaintext: Buffer.of(1) }), ...INVALID, field: "key_id" },
    { name: "Encrypt: key id of 100k characters", call: () => c.encrypt({ keyId: big(100_000), plaintext: Buffer.of(1) }), ...INVALID, field: "key_id" },
    { name: "Encrypt: SQL in the key id", call: () => c.encrypt({ keyId: "'; DROP TABLE keys; --", plaintext: Buffer.of(1) }), ...INVALID, field: "key_id" },
    { name: "Encrypt: unknown key", call: () => c.encrypt({ keyId: randomUUID(), plaintext: Buffer.of(1) }), ...NOT_FOUND },
    { name: "Encrypt: unknown alias", call: () => c.encrypt({ keyId: "alias/none-such", plaintext: Buffer.of(1) }), code: status.NOT_FOUND, kms: "Forbidden.AliasNotFound" },
    { name: "Encrypt: alias with a bad character", call: () => c.encrypt({ keyId: "alias/bad name", plaintext: Buffer.of(1) }), ...INVALID, field: "key_id" },
    { name: "Encrypt: disabled key", call: () => c.encrypt({ keyId: keys.disabled, plaintext: Buffer.of(1) }), code: status.FAILED_PRECONDITION, kms: "Rejected.Disabled" },
    { name: "Encrypt: key pending import", call: () => c.encrypt({ keyId: keys.external, plaintext: Buffer.of(1) }), code: status.FAILED_PRECONDITION, kms: "Rejected.PendingImport" },
    // Wrong kind of key for the operation.
    { name: "Encrypt: with a signing key", call: () => c.encrypt({ keyId: keys.rsaSign, plaintext: Buffer.of(1) }), ...USAGE },
    { name: "Encrypt: with an HMAC key", call: () => c.encrypt({ keyId: keys.hmac, plaintext: Buffer.of(1) }), ...USAGE },
    { name: "GenerateDataKey: with an EC key", call: () => c.generateDataKey({ keyId: keys.ec, keySpec: DataKeySpec.AES_256 }), ...USAGE },
    { name: "AsymmetricSign: with an AES key", call: () => c.asymmetricSign({ keyId: keys.aes, algorithm: SigningAlgorithm.ECDSA_SHA_256, input: { case: "message", value: Buffer.of(1) } }), ...USAGE },
    { name: "GenerateMac: with an AES key", call: () => c.generateMac({ keyId: keys.aes, message: Buffer.of(1) }), ...USAGE },
    { name: "GetPublicKey: of an AES key", call: () => c.getPublicKey({ keyId: keys.aes }), ...USAGE },
    { name: "AsymmetricSign: RSA algorithm on an EC key", call: () => c.asymmetricSign({ keyId: keys.ec, algorithm: SigningAlgorithm.RSA_PSS_SHA_256, input: { case: "message", value: Buffer.of(1) } }), ...INVALID, field: "algorithm" },
    { name: "AsymmetricSign: digest of the wrong length", call: () => c.asymmetricSign({ keyId: keys.ec, algorithm: SigningAlgorithm.ECDSA_SHA_256, input: { case: "digest", value: Buffer.alloc(31) } }), ...INVALID, field: "digest" },
    { name: "GenerateMac: 4097-byte message", call: () => c.generateMac({ keyId: keys.hmac, message: Buffer.alloc(4097) }), ...INVALID, field: "message" },
    { name: "VerifyMac: empty message", call: () => c.verifyMac({ keyId: keys.hmac, message: Buffer.alloc(0), mac: Buffer.alloc(32) }), ...INVALID, field: "message" },
    // Bad enums and numbers.
    { name: "CreateKey: unknown key spec 999", call: () => c.createKey({ keySpec: 999 as kmsResources.KeySpec }), ...INVALID, field: "key_spec" },
    { name: "CreateKey: unknown usage 77", call: () => c.createKey({ keyUsage: 77 as kmsResources.KeyUsage }), ...INVALID, field: "key_usage" },
    { name: "CreateKey: unknown protection level", call: () => c.createKey({ protectionLevel: 9 as kmsResources.ProtectionLevel }), ...INVALID, field: "protection_level" },
    { name: "CreateKey: unknown origin", call: () => c.createKey({ origin: 5 as kmsResources.Origin }), ...INVALID, field: "origin" },
    { name: "CreateKey: EC key for ENCRYPT_DECRYPT", call: () => c.createKey({ keySpec: KeySpec.EC_P256, keyUsage: KeyUsage.ENCRYPT_DECRYPT }), ...INVALID, field: "key_spec" },
    { name: "CreateKey: AES key for SIGN_VERIFY", call: () => c.createKey({ keySpec: KeySpec.AES_256, keyUsage: KeyUsage.SIGN_VERIFY }), ...INVALID, field: "key_spec" },
    { name: "CreateKey: 8193-character description", call: () => c.createKey({ description: big(8193) }), ...INVALID, field: "description" },
    { name: "CreateKey: 21 tags", call: () => c.createKey({ tags: Object.fromEntries(Array.from({ length: 21 }, (_, i) => [`t${i}`, "v"])) }), ...INVALID, field: "tags" },
    { name: "CreateKey: tag key of 129 characters", call: () => c.createKey({ tags: { [big(129)]: "v" } }), ...INVALID, field: "tags" },
    { name: "CreateKey: rotation interval of 1 day", call: () => c.createKey({ enableAutomaticRotation: true, rotationInterval: { seconds: 86_400n } }), ...INVALID, field: "rotation_interval" },
    { name: "CreateKey: negative rotation interval", call: () => c.createKey({ enableAutomaticRotation: true, rotationInterval: { seconds: -5n } }), ...INVALID, field: "rotation_interval" },
    { name: "GenerateDataKey: unknown data key spec", call: () => c.generateDataKey({ keyId: keys.aes, keySpec: 42 as kmsResources.DataKeySpec }), ...INVALID, field: "key_spec" },
    { name: "GenerateDataKey: 1025 bytes", call: () => c.generateDataKey({ keyId: keys.aes, numberOfBytes: 1025 }), ...INVALID, field: "number_of_bytes" },
    { name: "GenerateDataKey: both spec and size", call: () => c.generateDataKey({ keyId: keys.aes, keySpec: DataKeySpec.AES_256, numberOfBytes: 32 }), ...INVALID },
    { name: "GenerateRandom: 0 bytes", call: () => c.generateRandom({ numberOfBytes: 0 }), ...INVALID, field: "number_of_bytes" },
    { name: "GenerateRandom: 2^31-1 bytes", call: () => c.generateRandom({ numberOfBytes: 2 ** 31 - 1 }), ...INVALID, field: "number_of_bytes" },
    { name: "ScheduleKeyDeletion: 6-day window", call: () => c.scheduleKeyDeletion({ keyId: keys.other, pendingWindowInDays: 6 }), ...INVALID, field: "pending_window_in_days" },
    { name: "ScheduleKeyDeletion: 367-day window", call: () => c.scheduleKeyDeletion({ keyId: keys.other, pendingWindowInDays: 367 }), ...INVALID, field: "pending_window_in_days" },
    // Paging.
    { name: "ListKeys: negative page size", call: () => c.listKeys({ pageSize: -1 }), ...INVALID, field: "page_size" },
    { name: "ListKeys: page size -2^31", call: () => c.listKeys({ pageSize: -(2 ** 31) }), ...INVALID, field: "page_size" },
    { name: "ListKeys: forged page token", call: () => c.listKeys({ pageToken: "not-a-token" }), ...INVALID, field: "page_token" },
    { name: "ListKeys: 100k-character page token", call: () => c.listKeys({ pageToken: big(100_000, "A") }), ...INVALID, field: "page_token" },
    { name: "ListAliases: forged page token", call: () => c.listAliases({ pageToken: Buffer.from("{}").toString("base64url") }), ...INVALID, field: "page_token" },
    { name: "ListKeyVersions: bad version id", call: () => c.describeKeyVersion({ keyId: keys.aes, keyVersionId: "nope" }), ...INVALID, field: "key_version_id" },
    { name: "ListAuditEvents: negative page size", call: () => c.listAuditEvents({ pageSize: -7 }), ...INVALID, field: "page_size" },
    // Aliases and policies.
    { name: "CreateAlias: name without alias/", call: () => c.createAlias({ aliasName: "orders", keyId: keys.aes }), ...INVALID, field: "alias_name" },
    { name: "CreateAlias: 300-character name", call: () => c.createAlias({ aliasName: `alias/${big(300)}`, keyId: keys.aes }), ...INVALID, field: "alias_name" },
    { name: "SetKeyPolicy: not JSON", call: () => c.setKeyPolicy({ keyId: keys.aes, policyName: "default", policy: "{" }), ...INVALID, field: "policy" },
    { name: "SetKeyPolicy: JSON bomb (nesting 100k deep)", call: () => c.setKeyPolicy({ keyId: keys.aes, policyName: "default", policy: "[".repeat(100_000) + "]".repeat(100_000) }), ...INVALID, field: "policy" },
    { name: "SetKeyPolicy: 1 MiB of statements", call: () => c.setKeyPolicy({ keyId: keys.aes, policyName: "default", policy: JSON.stringify({ Version: "1", Statement: Array(20_000).fill({ Effect: "Allow", Principal: "*", Action: "kms:*", Resource: "*" }) }) }), ...INVALID, field: "policy" },
    { name: "SetKeyPolicy: unknown action", call: () => c.setKeyPolicy({ keyId: keys.aes, policyName: "default", policy: JSON.stringify({ Version: "1", Statement: [{ Effect: "Allow", Principal: "*", Action: "kms:Explode", Resource: "*" }] }) }), ...INVALID, field: "policy" },
    { name: "SetKeyPolicy: __proto__ keys", call: () => c.setKeyPolicy({ keyId: keys.aes, policyName: "default", policy: '{"__proto__":{"admin":true},"Version":"1","Statement":"x"}' }), ...INVALID, field: "policy" },
    { name: "SetKeyPolicy: other policy name", call: () => c.setKeyPolicy({ keyId: keys.aes, policyName: "root", policy: "{}" }), ...INVALID, field: "policy_name" },
  );
  return cases;
}

/** Nothing in a message may look like a stack, SQL, or a run of key-sized hex/base64. */
function expectNoLeak(details: string): void {
  expect(details.length).toBeLessThan(600);
  expect(details).not.toMatch(/\n\s+at |node_modules|\.ts:\d+|\.js:\d+/);
  expect(details).not.toMatch(/\b(SELECT|INSERT|UPDATE|DELETE FROM|syntax error at|relation "|postgres)\b/i);
  expect(details).not.toMatch(/[0-9a-f]{48,}|[A-Za-z0-9+/]{60,}/);
}

describe("bad-input catalogue", () => {
  it("gives every hostile request its documented status and kms-error-code, and the process stays up", async () => {
    const cases = catalogue();
    const results: string[] = [];
    const wrong: string[] = [];
    for (const k of cases) {
      const err = await k.call().then(
        () => undefined,
        (e: ServiceError) => e,
      );
      if (err === undefined) {
        wrong.push(`${k.name}: succeeded`);
        continue;
      }
      const got = { code: err.code, kms: errorCode(err.metadata) };
      const fieldOk = k.field === undefined || err.details.startsWith(`${k.field}`);
      const messageOk = k.message === undefined || err.details === k.message;
      if (got.code !== k.code || got.kms !== k.kms || !fieldOk || !messageOk) {
        wrong.push(`${k.name}: got ${got.code} ${got.kms} ${JSON.stringify(err.details.slice(0, 200))}`);
      }
      expectNoLeak(err.details);
      results.push(err.details);
    }
    expect(wrong).toEqual([]);
    // Every bad-ciphertext case: the very same bytes.
    const blobMessages = new Set(cases.flatMap((k, i) => (k.kms === "InvalidCiphertext" ? [results[i]] : [])));
    expect(results.length).toBe(cases.length);
    expect([...blobMessages]).toEqual([INVALID_CIPHERTEXT_MESSAGE]);
    process.stdout.write(`bad-input catalogue: ${cases.length + rawCases().length + importCaseCount} cases\n`);
    // Still up, still right.
    const ok = await c.decrypt({ ciphertextBlob: blobs.plain });
    expect(Buffer.from(ok.plaintext).toString()).toBe("secret");
    expect(stack.api.child.exitCode).toBeNull();
    expect(cases.length).toBeGreaterThanOrEqual(80);
  });

  // Raw protobuf the generated client cannot send: invalid UTF-8 in strings, wrong wire types, garbage.
  const varint = (n: number) => {
    const out: number[] = [];
    while (n > 0x7f) {
      out.push((n & 0x7f) | 0x80);
      n >>>= 7;
    }
    out.push(n);
    return Buffer.from(out);
  };
  const field = (no: number, bytes: Buffer) => Buffer.concat([varint((no << 3) | 2), varint(bytes.length), bytes]);
  const entry = (k: Buffer, v: Buffer) => Buffer.concat([field(1, k), field(2, v)]);
  function rawCases(): [string, string, Buffer][] {
    const BAD_UTF8 = Buffer.of(0xc3, 0x28, 0xff);
    const plaintext = field(2, Buffer.from("x"));
    return [
      ["Encrypt: key id with invalid UTF-8", "Encrypt", Buffer.concat([field(1, BAD_UTF8), plaintext])],
      ["Encrypt: context key with invalid UTF-8", "Encrypt", Buffer.concat([field(1, Buffer.from(keys.aes)), plaintext, field(3, entry(BAD_UTF8, Buffer.from("v")))])],
      ["Encrypt: context value with invalid UTF-8", "Encrypt", Buffer.concat([field(1, Buffer.from(keys.aes)), plaintext, field(3, entry(Buffer.from("k"), BAD_UTF8))])],
      ["Decrypt: context with a lone surrogate (CESU-8)", "Decrypt", Buffer.concat([field(1, blobs.plain), field(2, entry(Buffer.from("k"), Buffer.of(0xed, 0xa0, 0x80)))])],
      ["Encrypt: truncated message", "Encrypt", Buffer.concat([field(1, Buffer.from(keys.aes)), plaintext]).subarray(0, 10)],
      ["Encrypt: plaintext with a varint wire type", "Encrypt", Buffer.concat([field(1, Buffer.from(keys.aes)), varint((2 << 3) | 0), varint(5)])],
      ["Decrypt: length prefix past the end", "Decrypt", Buffer.concat([varint((1 << 3) | 2), varint(1_000_000), Buffer.alloc(10)])],
      ["CreateKey: garbage bytes", "CreateKey", Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01])],
      ["ListKeys: group wire type", "ListKeys", Buffer.of((1 << 3) | 3)],
    ];
  }

  it("answers raw malformed protobuf (invalid UTF-8, bad wire types) with INVALID_ARGUMENT", async () => {
    const raw = new Client(stack.address, credentials.createInsecure());
    const identity = (b: Buffer) => b;
    try {
      for (const [name, method, bytes] of rawCases()) {
        const err = await new Promise<ServiceError>((resolve, reject) =>
          raw.makeUnaryRequest(`/kms.v1.KeyManagementService/${method}`, identity, identity, bytes, (e) => (e ? resolve(e) : reject(new Error(`${name}: succeeded`)))),
        );
        expect({ name, code: err.code, kms: errorCode(err.metadata) }).toEqual({ name, code: status.INVALID_ARGUMENT, kms: "InvalidParameter" });
        expectNoLeak(err.details);
      }
    } finally {
      raw.close();
    }
  });

  const importCaseCount = 4;
  it("refuses replayed, foreign and forged import tokens, and import into a key that is not external", async () => {
    const keyId = (await c.createKey({ origin: Origin.EXTERNAL, protectionLevel: ProtectionLevel.SOFTWARE })).keyMetadata!.keyId;
    const params = await c.getParametersForImport({ keyId, wrappingAlgorithm: WrappingAlgorithm.RSAES_OAEP_SHA_256, wrappingKeySpec: WrappingKeySpec.RSA_2048 });
    const encryptedKeyMaterial = publicEncrypt({ key: params.publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" }, randomBytes(32));
    await c.importKeyMaterial({ keyId, importToken: params.importToken, encryptedKeyMaterial });
    await c.deleteKeyMaterial({ keyId });
    const cases: [string, () => Promise<unknown>, status, string][] = [
      ["replayed token", () => c.importKeyMaterial({ keyId, importToken: params.importToken, encryptedKeyMaterial }), status.INVALID_ARGUMENT, "Rejected.ImportTokenUsed"],
      ["forged token", () => c.importKeyMaterial({ keyId, importToken: randomBytes(32).toString("base64url"), encryptedKeyMaterial }), status.INVALID_ARGUMENT, "InvalidImportToken"],
      ["empty token", () => c.importKeyMaterial({ keyId, importToken: "", encryptedKeyMaterial }), status.INVALID_ARGUMENT, "InvalidParameter"],
      ["parameters for a KMS-made key", () => c.getParametersForImport({ keyId: keys.aes, wrappingAlgorithm: WrappingAlgorithm.RSAES_OAEP_SHA_256, wrappingKeySpec: WrappingKeySpec.RSA_2048 }), status.FAILED_PRECONDITION, "Rejected.KeyUsage"],
    ];
    expect(cases.length).toBe(importCaseCount);
    const got = [];
    for (const [name, call, code, kmsCode] of cases) {
      const err = await grpcError(call());
      got.push({ name, code: err.code, kms: errorCode(err.metadata), details: err.details, expected: { code, kms: kmsCode } });
      expectNoLeak(err.details);
    }
    expect(got.filter((g) => g.code !== g.expected.code || g.kms !== g.expected.kms)).toEqual([]);
  });

  it("2000 mutated blobs through the real service: never plaintext, always the one error", async () => {
    const sources = [blobs.plain, blobs.withContext, blobs.other, blobs.dataKey];
    let refused = 0;
    for (let i = 0; i < 2000; i++) {
      const source = sources[i % sources.length]!;
      const blob = Buffer.from(source);
      const kind = i % 5;
      let mutated: Buffer;
      if (kind === 0) mutated = flip(blob, Math.floor(Math.random() * blob.length));
      else if (kind === 1) mutated = blob.subarray(0, Math.floor(Math.random() * blob.length));
      else if (kind === 2) mutated = Buffer.concat([blob, randomBytes(1 + Math.floor(Math.random() * 32))]);
      else if (kind === 3) mutated = Buffer.concat([blob.subarray(0, 17), randomBytes(blob.length - 17)]);
      else mutated = Buffer.concat([blobs.other.subarray(0, 17).equals(blob.subarray(0, 17)) ? blobs.plain.subarray(0, 17) : blobs.other.subarray(0, 17), blob.subarray(17)]);
      const err = await grpcError(c.decrypt({ ciphertextBlob: mutated, encryptionContext: source === blobs.withContext ? { tenant: "a" } : {} }));
      expect([err.code, errorCode(err.metadata), err.details]).toEqual([status.INVALID_ARGUMENT, "InvalidCiphertext", INVALID_CIPHERTEXT_MESSAGE]);
      refused++;
    }
    process.stdout.write(`service-level mutated blobs: ${refused} refused with the one error\n`);
  });
});

describe("limits", () => {
  it("throttles a principal over its rate with RESOURCE_EXHAUSTED / Throttling, and keeps serving", async () => {
    const { client } = await stack.startReplica({ KMS_RATE_LIMIT_PER_SECOND: "1", KMS_RATE_LIMIT_BURST: "3", KMS_RATE_LIMIT_DELAY_MS: "300" });
    const outcomes: string[] = [];
    const heldMs: number[] = [];
    for (let i = 0; i < 5; i++) {
      const started = performance.now();
      try {
        await client.generateRandom({ numberOfBytes: 8 });
        outcomes.push("OK");
      } catch (err) {
        const e = err as ServiceError;
        outcomes.push(`${e.code} ${errorCode(e.metadata)} ${e.details}`);
        heldMs.push(performance.now() - started);
      }
    }
    const throttled = `${status.RESOURCE_EXHAUSTED} Throttling rate limit of 1 requests per second exceeded; retry later`;
    expect(outcomes).toEqual(["OK", "OK", "OK", throttled, throttled]);
    // A throttled answer is held for KMS_RATE_LIMIT_DELAY_MS, so a client retrying at once cannot spin.
    for (const ms of heldMs) expect(ms).toBeGreaterThanOrEqual(140); // 300 ms ± 50 %
    await new Promise((r) => setTimeout(r, 1100));
    expect((await client.generateRandom({ numberOfBytes: 8 })).random.length).toBe(8);
  });

  it("holds a throttled call no longer than the caller's deadline allows: RESOURCE_EXHAUSTED, not DEADLINE_EXCEEDED", async () => {
    const { client } = await stack.startReplica({ KMS_RATE_LIMIT_PER_SECOND: "1", KMS_RATE_LIMIT_BURST: "1", KMS_RATE_LIMIT_DELAY_MS: "10000" });
    await client.generateRandom({ numberOfBytes: 8 });
    // 2 s from now; the delay alone would hold it 5-15 s, past the deadline.
    const err = await grpcError(client.generateRandom({ numberOfBytes: 8 }, { deadline: 2000 }));
    expect([err.code, errorCode(err.metadata)]).toEqual([status.RESOURCE_EXHAUSTED, "Throttling"]);
  });

  it("refuses a request over KMS_MAX_REQUEST_BYTES with RESOURCE_EXHAUSTED before reading it", async () => {
    const { client, api } = await stack.startReplica({ KMS_MAX_REQUEST_BYTES: "4096" });
    const err = await grpcError(client.encrypt({ keyId: keys.aes, plaintext: Buffer.alloc(5000) }));
    expect(err.code).toBe(status.RESOURCE_EXHAUSTED);
    expect((await client.encrypt({ keyId: keys.aes, plaintext: Buffer.alloc(3000, 1) })).ciphertextBlob.length).toBe(3000 + 45);
    expect(api.child.exitCode).toBeNull();
  });

  it("lets a principal being throttled have only KMS_RATE_LIMIT_THROTTLED_IN_FLIGHT calls in progress; the next waits its turn", async () => {
    const { client } = await stack.startReplica({ KMS_RATE_LIMIT_PER_SECOND: "50", KMS_RATE_LIMIT_BURST: "2", KMS_RATE_LIMIT_DELAY_MS: "0", KMS_RATE_LIMIT_THROTTLED_IN_FLIGHT: "1" });
    // A first call warms the new process (connection, JIT): cold, it held the next calls back > 20 ms, one
    // token's refill at 50/s, and then all three below fitted. The bucket is full again 100 ms later.
    await client.generateRandom({ numberOfBytes: 4 });
    await new Promise((r) => setTimeout(r, 100));
    // Spend the bucket and get throttled: for the next 2 s this principal counts as flooding.
    const first = await Promise.allSettled([1, 2, 3].map(() => client.generateRandom({ numberOfBytes: 4 })));
    expect(first.filter((r) => r.status === "rejected")).toHaveLength(1);
    await new Promise((r) => setTimeout(r, 100)); // the bucket is full again
    stack.worker.kill("SIGSTOP"); // the next Encrypt stays in progress until the worker deadline (3 s here)
    try {
      const stuck = grpcError(client.encrypt({ keyId: keys.aes, plaintext: Buffer.of(1) }, { deadline: 20_000 }));
      await new Promise((r) => setTimeout(r, 50));
      // Needs no worker, but must wait for the Encrypt's turn: refused before its own deadline.
      const started = performance.now();
      const waited = await grpcError(client.listKeys({}, { deadline: 1000 }));
      expect([waited.code, errorCode(waited.metadata)]).toEqual([status.RESOURCE_EXHAUSTED, "Throttling"]);
      expect(performance.now() - started).toBeGreaterThanOrEqual(600); // it waited ~750 ms, not refused at once
      expect((await stuck).code).toBe(status.UNAVAILABLE);
    } finally {
      stack.worker.kill("SIGCONT");
    }
    // The turn came back with the Encrypt's answer.
    expect((await client.listKeys({})).keys).toBeDefined();
  });

  it("answers calls beyond KMS_MAX_CONCURRENT_STREAMS on one connection (they wait, none fails)", async () => {
    const { client } = await stack.startReplica({ KMS_MAX_CONCURRENT_STREAMS: "2" });
    const results = await Promise.all(Array.from({ length: 20 }, () => client.generateRandom({ numberOfBytes: 4 })));
    expect(results.map((r) => r.random.length)).toEqual(Array(20).fill(4));
  });
});


// Envelope encryption end to end through the real processes: kms-api → hsm-worker (SoftHSM2) →
// Postgres, for HSM and SOFTWARE keys.
import { randomBytes } from "node:crypto";
import { status } from "@grpc/grpc-js";
import postgres from "postgres";
import { kmsResources } from "@kms/proto";
import { errorCode, grpcError, startStack } from "../harness";
import type { Stack } from "../harness";

const { KeySpec, KeyUsage, ProtectionLevel, KeyState, DataKeySpec } = kmsResources;
const INVALID = "ciphertext or encryption context is invalid";

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(async () => {
  await stack?.stop();
});

describe.each([
  ["HSM", ProtectionLevel.HSM],
  ["SOFTWARE", ProtectionLevel.SOFTWARE],
])("%s key", (_name, protectionLevel) => {
  let keyId: string;

  beforeAll(async () => {
    const created = await stack.client.createKey({ description: "it", protectionLevel, tags: { team: "it" } });
    const meta = created.keyMetadata!;
    keyId = meta.keyId;
    expect(meta.keySpec).toBe(KeySpec.AES_256);
    expect(meta.keyUsage).toBe(KeyUsage.ENCRYPT_DECRYPT);
    expect(meta.protectionLevel).toBe(protectionLevel);
    expect(meta.keyState).toBe(KeyState.ENABLED);
    expect(meta.creator).toBe("dev");
    expect(meta.primaryKeyVersionId).toMatch(/^[0-9a-f-]{36}$/);
    expect(meta.tags).toEqual({ team: "it" });
  });

  it("describes the key", async () => {
    const { keyMetadata } = await stack.client.describeKey({ keyId });
    expect(keyMetadata?.keyId).toBe(keyId);
    expect(keyMetadata?.description).toBe("it");
    expect(keyMetadata?.protectionLevel).toBe(protectionLevel);
  });

  it("round-trips with an encryption context", async () => {
    const plaintext = randomBytes(256);
    const context = { tenant: "acme", purpose: "test" };
    const enc = await stack.client.encrypt({ keyId, plaintext, encryptionContext: context });
    expect(enc.keyId).toBe(keyId);
    expect(enc.ciphertextBlob.length).toBe(1 + 16 + 12 + 256 + 16);
    // Context order does not matter.
    const dec = await stack.client.decrypt({ ciphertextBlob: enc.ciphertextBlob, encryptionContext: { purpose: "test", tenant: "acme" } });
    expect(Buffer.from(dec.plaintext)).toEqual(plaintext);
    expect(dec.keyId).toBe(keyId);
    expect(dec.keyVersionId).toBe(enc.keyVersionId);
  });

  it("refuses a different context, a missing context and every tampered byte with one message", async () => {
    const enc = await stack.client.encrypt({ keyId, plaintext: Buffer.from("secret"), encryptionContext: { a: "1" } });
    const blob = enc.ciphertextBlob;
    const attempts: [Uint8Array, Record<string, string>][] = [
      [blob, { a: "2" }],
      [blob, {}],
      [blob, { a: "1", b: "" }],
      [blob.subarray(0, blob.length - 1), { a: "1" }],
      [Buffer.concat([blob, Buffer.of(0)]), { a: "1" }],
      [Buffer.alloc(0), {}],
    ];
    for (let i = 0; i < blob.length; i++) {
      const tampered = Buffer.from(blob);
      tampered[i]! ^= 0x01;
      attempts.push([tampered, { a: "1" }]);
    }
    for (const [ciphertextBlob, encryptionContext] of attempts) {
      const err = await grpcError(stack.client.decrypt({ ciphertextBlob, encryptionContext }));
      expect(err.code).toBe(status.INVALID_ARGUMENT);
      expect(err.details).toBe(INVALID);
      expect(errorCode(err.metadata)).toBe("InvalidCiphertext");
    }
  });

  it("generates data keys with and without plaintext", async () => {
    const withPlain = await stack.client.generateDataKey({ keyId, keySpec: DataKeySpec.AES_256, encryptionContext: { f: "x" } });
    expect(withPlain.plaintext.length).toBe(32);
    const back = await stack.client.decrypt({ ciphertextBlob: withPlain.ciphertextBlob, encryptionContext: { f: "x" } });
    expect(Buffer.from(back.plaintext)).toEqual(Buffer.from(withPlain.plaintext));

    const aes128 = await stack.client.generateDataKey({ keyId, keySpec: DataKeySpec.AES_128 });
    expect(aes128.plaintext.length).toBe(16);
    const seven = await stack.client.generateDataKey({ keyId, numberOfBytes: 7 });
    expect(seven.plaintext.length).toBe(7);

    const without = await stack.client.generateDataKeyWithoutPlaintext({ keyId });
    expect(Object.keys(without)).not.toContain("plaintext");
    const unwrapped = await stack.client.decrypt({ ciphertextBlob: without.ciphertextBlob });
    expect(unwrapped.plaintext.length).toBe(32);
  });

  it("does not decrypt one key's blob as another's", async () => {
    const other = (await stack.client.createKey({ protectionLevel })).keyMetadata!.keyId;
    const enc = await stack.client.encrypt({ keyId, plaintext: Buffer.from("x") });
    const otherEnc = await stack.client.encrypt({ keyId: other, plaintext: Buffer.from("x") });
    // Splice the other key's version id into this blob's header.
    const forged = Buffer.concat([otherEnc.ciphertextBlob.subarray(0, 17), enc.ciphertextBlob.subarray(17)]);
    const err = await grpcError(stack.client.decrypt({ ciphertextBlob: forged }));
    expect(err.details).toBe(INVALID);
  });
});

describe("validation", () => {
  let keyId: string;
  beforeAll(async () => {
    keyId = (await stack.client.createKey({ protectionLevel: ProtectionLevel.SOFTWARE })).keyMetadata!.keyId;
  });

  const cases: [string, () => Promise<unknown>, status, string, RegExp][] = [
    ["empty plaintext", () => stack.client.encrypt({ keyId, plaintext: new Uint8Array() }), status.INVALID_ARGUMENT, "InvalidParameter", /^plaintext: /],
    ["6145-byte plaintext", () => stack.client.encrypt({ keyId, plaintext: new Uint8Array(6145) }), status.INVALID_ARGUMENT, "InvalidParameter", /^plaintext: /],
    ["malformed key id", () => stack.client.encrypt({ keyId: "nope", plaintext: Buffer.from("x") }), status.INVALID_ARGUMENT, "InvalidParameter", /^key_id: /],
    ["unknown key", () => stack.client.describeKey({ keyId: "00000000-0000-4000-8000-000000000000" }), status.NOT_FOUND, "Forbidden.KeyNotFound", /not found/],
    ["unknown alias", () => stack.client.describeKey({ keyId: "alias/none" }), status.NOT_FOUND, "Forbidden.AliasNotFound", /not found/],
    ["empty context key", () => stack.client.encrypt({ keyId, plaintext: Buffer.from("x"), encryptionContext: { "": "v" } }), status.INVALID_ARGUMENT, "InvalidParameter", /^encryption_context: /],
    ["oversized context", () => stack.client.encrypt({ keyId, plaintext: Buffer.from("x"), encryptionContext: { k: "v".repeat(9000) } }), status.INVALID_ARGUMENT, "InvalidParameter", /^encryption_context: /],
    ["bad pairing", () => stack.client.createKey({ keySpec: KeySpec.AES_256, keyUsage: KeyUsage.SIGN_VERIFY }), status.INVALID_ARGUMENT, "InvalidParameter", /KEY_SPEC_AES_256.*KEY_USAGE_SIGN_VERIFY/],
    ["unknown enum", () => stack.client.createKey({ keySpec: 77 as kmsResources.KeySpec }), status.INVALID_ARGUMENT, "InvalidParameter", /^key_spec: unknown value 77$/],
    ["long description", () => stack.client.createKey({ description: "d".repeat(8193) }), status.INVALID_ARGUMENT, "InvalidParameter", /^description: /],
    ["data key too long", () => stack.client.generateDataKey({ keyId, numberOfBytes: 1025 }), status.INVALID_ARGUMENT, "InvalidParameter", /^number_of_bytes: /],
    ["negative page size", () => stack.client.listKeys({ pageSize: -1 }), status.INVALID_ARGUMENT, "InvalidParameter", /^page_size: /],
    ["forged page token", () => stack.client.listKeys({ pageToken: "garbage" }), status.INVALID_ARGUMENT, "InvalidParameter", /^page_token: /],
  ];

  it.each(cases)("%s", async (_name, call, code, kmsCode, message) => {
    const err = await grpcError(call());
    expect(err.code).toBe(code);
    expect(errorCode(err.metadata)).toBe(kmsCode);
    expect(err.details).toMatch(message);
  });
});

describe("ListKeys", () => {
  it("pages through every key exactly once", async () => {
    const created = new Set<string>();
    for (let i = 0; i < 5; i++) created.add((await stack.client.createKey({ protectionLevel: ProtectionLevel.SOFTWARE, tags: { page: "walk" } })).keyMetadata!.keyId);
    const seen: string[] = [];
    let pageToken = "";
    let pages = 0;
    do {
      const page = await stack.client.listKeys({ pageSize: 2, pageToken, filter: { tags: { page: "walk" } } });
      expect(page.keys.length).toBeLessThanOrEqual(2);
      seen.push(...page.keys.map((k) => k.keyId));
      pageToken = page.nextPageToken;
      pages++;
    } while (pageToken !== "");
    expect(pages).toBe(3);
    expect(seen.sort()).toEqual([...created].sort());
  });

  it("refuses a token used with another filter", async () => {
    const first = await stack.client.listKeys({ pageSize: 1 });
    expect(first.nextPageToken).not.toBe("");
    const err = await grpcError(stack.client.listKeys({ pageSize: 1, pageToken: first.nextPageToken, filter: { keyStates: [KeyState.DISABLED] } }));
    expect(err.code).toBe(status.INVALID_ARGUMENT);
  });
});

describe("storage and audit", () => {
  it("keeps no plaintext or data key in any Postgres column and audits every request", async () => {
    const sql = postgres(stack.db.url, { max: 1, onnotice: () => {} });
    try {
      const keyId = (await stack.client.createKey({})).keyMetadata!.keyId;
      const marker = Buffer.from(`PLAINTEXT-MARKER-${randomBytes(8).toString("hex")}`);
      await stack.client.encrypt({ keyId, plaintext: marker, encryptionContext: { c: "v" } });
      const dataKey = await stack.client.generateDataKey({ keyId });
      await grpcError(stack.client.encrypt({ keyId, plaintext: new Uint8Array() }));

      const tables = await sql<{ table_name: string }[]>`
        SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'`;
      for (const { table_name } of tables) {
        const rows = await sql.unsafe(`SELECT * FROM ${table_name}`);
        for (const row of rows) {
          for (const value of Object.values(row)) {
            const bytes = Buffer.isBuffer(value) ? value : Buffer.from(String(value));
            expect(bytes.includes(marker)).toBe(false);
            expect(bytes.includes(Buffer.from(dataKey.plaintext))).toBe(false);
            expect(bytes.includes(Buffer.from(marker.toString("hex")))).toBe(false);
          }
        }
      }

      const audit = await sql<{ operation: string; result_code: string; error_code: string; key_id: string; principal: string }[]>`
        SELECT operation, result_code, error_code, key_id, principal FROM audit_events WHERE key_id = ${keyId} ORDER BY sequence`;
      expect(audit.map((r) => [r.operation, r.result_code, r.error_code])).toEqual([
        ["CreateKey", "OK", ""],
        ["Encrypt", "OK", ""],
        ["GenerateDataKey", "OK", ""],
        ["Encrypt", "INVALID_ARGUMENT", "InvalidParameter"],
      ]);
      expect(audit.every((r) => r.principal === "dev")).toBe(true);
    } finally {
      await sql.end();
    }
  });
});

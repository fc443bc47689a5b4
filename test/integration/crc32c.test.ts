// CRC32C end-to-end integrity through the real processes (Google Cloud KMS's *_crc32c semantics): a
// correct CRC32C is verified, a wrong one is refused before any key is used, every response's bytes
// carry theirs; the SDK checks them by default; a Python client with its own CRC32C code is accepted.
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { status } from "@grpc/grpc-js";
import postgres from "postgres";
import { KmsClient } from "@kms/client";
import { crc32c } from "@kms/integrity";
import { kmsResources } from "@kms/proto";
import { errorCode, grpcError, startStack } from "../harness";
import type { Stack } from "../harness";

const { KeySpec, KeyUsage, SigningAlgorithm, EncryptionAlgorithm } = kmsResources;
const run = promisify(execFile);
const repo = path.resolve(__dirname, "../..");
const bytes = (s: string) => Buffer.from(s);

let stack: Stack;
let aesKey: string;
beforeAll(async () => {
  stack = await startStack();
  aesKey = (await stack.client.createKey({}))!.keyMetadata!.keyId;
});
afterAll(async () => {
  await stack?.stop();
});

async function auditRows(operation: string, keyId: string) {
  const sql = postgres(stack.db.url, { max: 1, onnotice: () => {} });
  try {
    return await sql<{ error_code: string; key_version_id: string }[]>`
      SELECT error_code, key_version_id FROM audit_events WHERE operation = ${operation} AND key_id = ${keyId} ORDER BY sequence`;
  } finally {
    await sql.end();
  }
}

describe("symmetric calls", () => {
  it("verify correct CRC32Cs and give the response bytes theirs", async () => {
    const c = stack.client;
    const plaintext = bytes("checked on the way in");
    const enc = await c.encrypt({ keyId: aesKey, plaintext, plaintextCrc32c: crc32c(plaintext) });
    expect(enc.verifiedPlaintextCrc32c).toBe(true);
    expect(enc.ciphertextBlobCrc32c).toBe(crc32c(enc.ciphertextBlob));

    const dec = await c.decrypt({ ciphertextBlob: enc.ciphertextBlob, ciphertextBlobCrc32c: crc32c(enc.ciphertextBlob) });
    expect([dec.verifiedCiphertextBlobCrc32c, Buffer.from(dec.plaintext).equals(plaintext), dec.plaintextCrc32c]).toEqual([true, true, crc32c(plaintext)]);

    const re = await c.reEncrypt({ ciphertextBlob: enc.ciphertextBlob, ciphertextBlobCrc32c: crc32c(enc.ciphertextBlob), destinationKeyId: aesKey });
    expect([re.verifiedCiphertextBlobCrc32c, re.ciphertextBlobCrc32c]).toEqual([true, crc32c(re.ciphertextBlob)]);

    const dk = await c.generateDataKey({ keyId: aesKey });
    expect([dk.plaintextCrc32c, dk.ciphertextBlobCrc32c]).toEqual([crc32c(dk.plaintext), crc32c(dk.ciphertextBlob)]);
    const dkw = await c.generateDataKeyWithoutPlaintext({ keyId: aesKey });
    expect(dkw.ciphertextBlobCrc32c).toBe(crc32c(dkw.ciphertextBlob));
    const random = await c.generateRandom({ numberOfBytes: 100 });
    expect(random.randomCrc32c).toBe(crc32c(random.random));
  });

  it("answer as before to a caller that sends none, apart from the new response fields", async () => {
    const enc = await stack.client.encrypt({ keyId: aesKey, plaintext: bytes("no CRC32C") });
    expect([enc.verifiedPlaintextCrc32c, enc.ciphertextBlobCrc32c]).toEqual([false, crc32c(enc.ciphertextBlob)]);
  });

  it("refuse a wrong CRC32C, naming the field, before the key is used", async () => {
    const keyId = (await stack.client.createKey({ description: "never used" }))!.keyMetadata!.keyId;
    const plaintext = bytes("corrupted on the way");
    const err = await grpcError(stack.client.encrypt({ keyId, plaintext, plaintextCrc32c: (crc32c(plaintext) ^ 0x10) >>> 0 }));
    expect([err.code, errorCode(err.metadata)]).toEqual([status.INVALID_ARGUMENT, "Rejected.ChecksumMismatch"]);
    expect(err.details).toMatch(/^plaintext_crc32c: does not match the CRC32C of plaintext/);
    // The row names the key but no version: the call never reached the key, so no ciphertext was made.
    expect(await auditRows("Encrypt", keyId)).toEqual([{ error_code: "Rejected.ChecksumMismatch", key_version_id: "" }]);

    // A blob corrupted after its CRC32C was taken is a checksum mismatch, not a bad ciphertext: it is
    // refused before the service tries to open it.
    const enc = await stack.client.encrypt({ keyId, plaintext });
    const corrupted = Buffer.from(enc.ciphertextBlob);
    const sentCrc = crc32c(corrupted);
    corrupted[corrupted.length - 1]! ^= 1;
    const bad = await grpcError(stack.client.decrypt({ ciphertextBlob: corrupted, ciphertextBlobCrc32c: sentCrc }));
    expect([bad.code, errorCode(bad.metadata), bad.details.split(":")[0]]).toEqual([status.INVALID_ARGUMENT, "Rejected.ChecksumMismatch", "ciphertext_blob_crc32c"]);
  });

  it("check a batch's items: one wrong CRC32C refuses the batch, naming the item", async () => {
    const items = ["a", "b", "c"].map((s) => ({ keyId: aesKey, plaintext: bytes(s), plaintextCrc32c: crc32c(bytes(s)) }));
    const ok = await stack.client.batchEncrypt({ items });
    expect(ok.results.map((r) => [r.response?.verifiedPlaintextCrc32c, r.response?.ciphertextBlobCrc32c === crc32c(r.response!.ciphertextBlob)])).toEqual([
      [true, true],
      [true, true],
      [true, true],
    ]);
    items[1]!.plaintextCrc32c = (items[1]!.plaintextCrc32c ^ 1) >>> 0; // `^` gives a signed 32-bit number
    const err = await grpcError(stack.client.batchEncrypt({ items }));
    expect([err.code, errorCode(err.metadata)]).toEqual([status.INVALID_ARGUMENT, "Rejected.ChecksumMismatch"]);
    expect(err.details).toMatch(/^items\[1\]\.plaintext_crc32c:/);
  });
});

describe("asymmetric and MAC calls", () => {
  it("verify digest, message, signature and MAC CRC32Cs, and refuse a wrong one", async () => {
    const c = stack.client;
    const ecKey = (await c.createKey({ keySpec: KeySpec.EC_P256, keyUsage: KeyUsage.SIGN_VERIFY }))!.keyMetadata!.keyId;
    const message = bytes("signed message");
    const digest = createHash("sha256").update(message).digest();
    const algorithm = SigningAlgorithm.ECDSA_SHA_256;
    const signed = await c.asymmetricSign({ keyId: ecKey, algorithm, input: { case: "digest", value: digest }, digestCrc32c: crc32c(digest) });
    expect([signed.verifiedDigestCrc32c, signed.verifiedMessageCrc32c, signed.valueCrc32c]).toEqual([true, false, crc32c(signed.value)]);
    const fromMessage = await c.asymmetricSign({ keyId: ecKey, algorithm, input: { case: "message", value: message }, messageCrc32c: crc32c(message) });
    expect(fromMessage.verifiedMessageCrc32c).toBe(true);

    const verify = { keyId: ecKey, algorithm, input: { case: "message" as const, value: message }, messageCrc32c: crc32c(message), value: signed.value };
    const verified = await c.asymmetricVerify({ ...verify, valueCrc32c: crc32c(signed.value) });
    expect([verified.value, verified.verifiedMessageCrc32c, verified.verifiedValueCrc32c]).toEqual([true, true, true]);
    const wrong = await grpcError(c.asymmetricVerify({ ...verify, valueCrc32c: (crc32c(signed.value) + 1) % 2 ** 32 }));
    expect([errorCode(wrong.metadata), wrong.details.split(":")[0]]).toEqual(["Rejected.ChecksumMismatch", "value_crc32c"]);

    const macKey = (await c.createKey({ keySpec: KeySpec.HMAC_SHA256, keyUsage: KeyUsage.GENERATE_VERIFY_MAC }))!.keyMetadata!.keyId;
    const mac = await c.generateMac({ keyId: macKey, message, messageCrc32c: crc32c(message) });
    expect([mac.verifiedMessageCrc32c, mac.macCrc32c]).toEqual([true, crc32c(mac.mac)]);
    const macOk = await c.verifyMac({ keyId: macKey, message, messageCrc32c: crc32c(message), mac: mac.mac, macCrc32c: crc32c(mac.mac) });
    expect([macOk.macValid, macOk.verifiedMessageCrc32c, macOk.verifiedMacCrc32c]).toEqual([true, true, true]);
    const macWrong = await grpcError(c.verifyMac({ keyId: macKey, message, mac: mac.mac, macCrc32c: 0 }));
    expect([errorCode(macWrong.metadata), macWrong.details.split(":")[0]]).toEqual(["Rejected.ChecksumMismatch", "mac_crc32c"]);
  });

  it("verify RSA encryption's plaintext and ciphertext CRC32Cs", async () => {
    const c = stack.client;
    const rsaKey = (await c.createKey({ keySpec: KeySpec.RSA_2048, keyUsage: KeyUsage.ENCRYPT_DECRYPT }))!.keyMetadata!.keyId;
    const algorithm = EncryptionAlgorithm.RSAES_OAEP_SHA_256;
    const plaintext = bytes("for RSA");
    const enc = await c.asymmetricEncrypt({ keyId: rsaKey, algorithm, plaintext, plaintextCrc32c: crc32c(plaintext) });
    expect([enc.verifiedPlaintextCrc32c, enc.ciphertextBlobCrc32c]).toEqual([true, crc32c(enc.ciphertextBlob)]);
    const dec = await c.asymmetricDecrypt({ keyId: rsaKey, algorithm, ciphertextBlob: enc.ciphertextBlob, ciphertextBlobCrc32c: crc32c(enc.ciphertextBlob) });
    expect([dec.verifiedCiphertextBlobCrc32c, dec.plaintextCrc32c, Buffer.from(dec.plaintext).equals(plaintext)]).toEqual([true, crc32c(plaintext), true]);
  });
});

it("lets the SDK send and check them by default", async () => {
  const sdk = new KmsClient({ address: stack.address });
  try {
    const enc = await sdk.encrypt({ keyId: aesKey, plaintext: bytes("through the SDK") });
    expect(enc.verifiedPlaintextCrc32c).toBe(true);
    const dec = await sdk.decrypt({ ciphertextBlob: enc.ciphertextBlob });
    expect([dec.verifiedCiphertextBlobCrc32c, Buffer.from(dec.plaintext).toString()]).toEqual([true, "through the SDK"]);
  } finally {
    sdk.close();
  }
});

it("accepts a Python client's CRC32C, computed with its own code", async () => {
  const stubs = mkdtempSync(path.join(os.tmpdir(), "kms-py-crc-"));
  await run("bash", [path.join(repo, "examples/python/generate.sh"), stubs], { cwd: repo });
  const { stdout } = await run("/usr/bin/python3", [path.join(repo, "examples/python/crc32c_check.py"), stack.address, stubs], { cwd: repo, timeout: 60_000 });
  expect(stdout.trim().split("\n").pop()).toBe("5 passed, 0 failed");
});

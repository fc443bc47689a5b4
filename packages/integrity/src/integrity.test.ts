// The two sides of the CRC32C fields over plain messages: the SDK fills the request, the service checks
// it and fills the response, the SDK checks that; a corrupted byte anywhere is caught on the other side.
import { status } from "@grpc/grpc-js";
import { ErrorCode, KmsError } from "@kms/errors";
import { kms } from "@kms/proto";
import { crc32c } from "./crc32c";
import { checkRequestChecksums, fillResponseChecksums } from "./server";
import { IntegrityError, checkResponseChecksums, withRequestChecksums } from "./client";
import { integrityOf } from "./fields";
import { CHECKSUM_FIELDS } from "./table";
import type { Integrity } from "./fields";

type Message = Record<string, unknown>;
const bytes = (s: string) => new TextEncoder().encode(s);

function of(rpc: string): Integrity {
  const integrity = integrityOf(rpc);
  if (!integrity) throw new Error(`no integrity for ${rpc}`);
  return integrity;
}

function thrown<E extends Error>(fn: () => void, type: new (...args: never[]) => E): E {
  try {
    fn();
  } catch (err) {
    if (err instanceof type) return err;
    throw err;
  }
  throw new Error(`expected a ${type.name}`);
}
const refusal = (fn: () => void) => thrown(fn, KmsError);
const clientFailure = (fn: () => void) => thrown(fn, IntegrityError);

/** Flips one bit of byte `i`, as corruption on the way would. */
function corrupt(value: unknown, i = 0): void {
  const view = value as Uint8Array;
  view[i] = view[i]! ^ 1;
}

it("resolves every RPC of the table against kms.v1", () => {
  for (const rpc of Object.keys(CHECKSUM_FIELDS)) expect([rpc, kms.KeyManagementService.methods.some((m) => m.name === rpc), integrityOf(rpc) !== undefined]).toEqual([rpc, true, true]);
  expect(integrityOf("DescribeKey")).toBeUndefined();
});

describe("a single call (Encrypt)", () => {
  const encrypt = of("Encrypt");

  it("goes through when nothing is corrupted, and says what it verified", () => {
    const sent = withRequestChecksums(encrypt, { keyId: "k", plaintext: bytes("hello") });
    expect(sent).toMatchObject({ plaintextCrc32c: crc32c(bytes("hello")) });
    checkRequestChecksums(encrypt, sent);
    const response: Message = { ciphertextBlob: bytes("sealed") };
    fillResponseChecksums(encrypt, sent, response);
    expect(response).toMatchObject({ ciphertextBlobCrc32c: crc32c(bytes("sealed")), verifiedPlaintextCrc32c: true });
    checkResponseChecksums(encrypt, sent, response);
  });

  it("leaves the caller's request alone and keeps a CRC32C the caller set", () => {
    const request = { keyId: "k", plaintext: bytes("hello"), plaintextCrc32c: 7 };
    const sent = withRequestChecksums(encrypt, request);
    expect(sent.plaintextCrc32c).toBe(7);
    expect(withRequestChecksums(encrypt, { plaintext: bytes("x") })).not.toBe(request);
  });

  it("refuses a request whose bytes changed on the way, naming the field", () => {
    const sent = withRequestChecksums(encrypt, { plaintext: bytes("hello") });
    corrupt(sent.plaintext);
    const e = refusal(() => checkRequestChecksums(encrypt, sent));
    expect([e.code, e.status]).toEqual([ErrorCode.ChecksumMismatch, status.INVALID_ARGUMENT]);
    expect(e.message).toMatch(/^plaintext_crc32c: does not match/);
  });

  it("marks nothing verified when no CRC32C was sent, but still fills the response's", () => {
    const request = { plaintext: bytes("hello") };
    checkRequestChecksums(encrypt, request);
    const response: Message = { ciphertextBlob: bytes("sealed") };
    fillResponseChecksums(encrypt, request, response);
    expect(response).toMatchObject({ verifiedPlaintextCrc32c: false, ciphertextBlobCrc32c: crc32c(bytes("sealed")) });
  });

  it("lets the client catch corrupted response bytes, a missing CRC32C and an unverified request", () => {
    const sent = withRequestChecksums(encrypt, { plaintext: bytes("hello") });
    const response: Message = { ciphertextBlob: bytes("sealed") };
    fillResponseChecksums(encrypt, sent, response);
    corrupt(response.ciphertextBlob, 2);
    expect(clientFailure(() => checkResponseChecksums(encrypt, sent, response)).field).toBe("ciphertext_blob_crc32c");
    expect(clientFailure(() => checkResponseChecksums(encrypt, sent, { ciphertextBlob: bytes("x"), verifiedPlaintextCrc32c: true })).message).toMatch(
      /sent no CRC32C of ciphertext_blob/,
    );
    const unverified = { ciphertextBlob: bytes("x"), ciphertextBlobCrc32c: crc32c(bytes("x")), verifiedPlaintextCrc32c: false };
    expect(clientFailure(() => checkResponseChecksums(encrypt, sent, unverified)).field).toBe("verified_plaintext_crc32c");
  });
});

describe("a oneof input (AsymmetricSign)", () => {
  const sign = of("AsymmetricSign");

  it("checks the member that is set, and reads the other as empty", () => {
    const digest = new Uint8Array(32).fill(1);
    const sent = withRequestChecksums(sign, { keyId: "k", input: { case: "digest", value: digest } });
    expect(sent).toMatchObject({ digestCrc32c: crc32c(digest), messageCrc32c: 0 });
    checkRequestChecksums(sign, sent);
    const wrong = { ...sent, messageCrc32c: 1 };
    expect(refusal(() => checkRequestChecksums(sign, wrong)).message).toMatch(/^message_crc32c:/);
    const response: Message = { value: bytes("sig") };
    fillResponseChecksums(sign, sent, response);
    expect(response).toMatchObject({ verifiedDigestCrc32c: true, verifiedMessageCrc32c: true, valueCrc32c: crc32c(bytes("sig")) });
  });
});

describe("a batch (BatchDecrypt)", () => {
  const batch = of("BatchDecrypt");

  it("checks each item and names the one that changed", () => {
    const sent = withRequestChecksums(batch, { items: [{ ciphertextBlob: bytes("a") }, { ciphertextBlob: bytes("b") }] });
    checkRequestChecksums(batch, sent);
    corrupt((sent.items as Message[])[1]!.ciphertextBlob);
    expect(refusal(() => checkRequestChecksums(batch, sent)).message).toMatch(/^items\[1\]\.ciphertext_blob_crc32c:/);
  });

  it("fills and checks each successful result, skipping a failed one", () => {
    const sent = withRequestChecksums(batch, { items: [{ ciphertextBlob: bytes("a") }, { ciphertextBlob: bytes("b") }] });
    const response: Message = { results: [{ status: { code: 5 } }, { status: { code: 0 }, response: { plaintext: bytes("p") } }] };
    fillResponseChecksums(batch, sent, response);
    checkResponseChecksums(batch, sent, response);
    const second = (response.results as { response: Message }[])[1]!.response;
    expect(second).toMatchObject({ plaintextCrc32c: crc32c(bytes("p")), verifiedCiphertextBlobCrc32c: true });
    corrupt(second.plaintext);
    expect(clientFailure(() => checkResponseChecksums(batch, sent, response)).field).toBe("results[1].response.plaintext_crc32c");
  });
});

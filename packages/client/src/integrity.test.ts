// The SDK's CRC32C checks against an in-process server whose transport corrupts bytes on demand: the
// honest path is checked by the service's own code (@kms/integrity), a request corrupted on the way is
// refused there, a response corrupted on the way (or a service that never verifies) is an IntegrityError.
import { create } from "@bufbuild/protobuf";
import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import { Server, ServerCredentials, status } from "@grpc/grpc-js";
import type { ServerUnaryCall, sendUnaryData } from "@grpc/grpc-js";
import { toStatus } from "@kms/errors";
import { checkRequestChecksums, crc32c, fillResponseChecksums, integrityOf } from "@kms/integrity";
import { grpcServiceDefinition, kms } from "@kms/proto";
import { KmsClient } from "./client";
import { KmsClientError } from "./errors";
import { IntegrityError } from "./index";

/** What the fake transport does to a call: nothing; flip a bit on the way in or out; or answer as a service without the fields. */
type Transport = "honest" | "corrupt-request" | "corrupt-response" | "old-service";

type Message = Record<string, unknown>;
let transport: Transport;
let received: Message[];
let server: Server;
let address: string;

function flip(bytes: unknown): void {
  const view = bytes as Uint8Array;
  view[0] = view[0]! ^ 1;
}

/** A unary handler: `answer` builds the response; the transport corrupts around the service's own checks. */
function handler<O extends DescMessage>(rpc: string, output: O, answer: (request: Message) => Message, corrupt: (request: Message, response: Message) => void) {
  const integrity = integrityOf(rpc)!;
  return (call: ServerUnaryCall<Message, unknown>, callback: sendUnaryData<unknown>) => {
    const request = call.request;
    received.push(request);
    try {
      if (transport === "corrupt-request") corrupt(request, {});
      if (transport !== "old-service") checkRequestChecksums(integrity, request);
      const response = answer(request);
      if (transport !== "old-service") fillResponseChecksums(integrity, request, response);
      if (transport === "corrupt-response") corrupt({}, response);
      callback(null, create(output, response as MessageShape<O>));
    } catch (err) {
      callback(toStatus(err));
    }
  };
}

beforeAll(async () => {
  server = new Server();
  server.addService(grpcServiceDefinition(kms.KeyManagementService), {
    Encrypt: handler(
      "Encrypt",
      kms.EncryptResponseSchema,
      (r) => ({ ciphertextBlob: Uint8Array.from([...(r.plaintext as Uint8Array)].reverse()), keyId: r.keyId }),
      (req, res) => flip(req.plaintext ?? res.ciphertextBlob),
    ),
    Decrypt: handler(
      "Decrypt",
      kms.DecryptResponseSchema,
      (r) => ({ plaintext: Uint8Array.from([...(r.ciphertextBlob as Uint8Array)].reverse()) }),
      (req, res) => flip(req.ciphertextBlob ?? res.plaintext),
    ),
    GenerateRandom: handler("GenerateRandom", kms.GenerateRandomResponseSchema, (r) => ({ random: new Uint8Array(r.numberOfBytes as number).fill(7) }), (_, res) => flip(res.random)),
    BatchEncrypt: handler(
      "BatchEncrypt",
      kms.BatchEncryptResponseSchema,
      (r) => ({ results: (r.items as Message[]).map((item) => ({ status: { code: 0 }, response: { ciphertextBlob: Uint8Array.from(item.plaintext as Uint8Array) } })) }),
      (req, res) => {
        if (req.items) flip((req.items as Message[])[1]!.plaintext);
        else flip(((res.results as Message[])[1]!.response as Message).ciphertextBlob);
      },
    ),
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  address = `127.0.0.1:${port}`;
});
afterAll(() => server.forceShutdown());

let kmsClient: KmsClient;
beforeEach(() => {
  transport = "honest";
  received = [];
  kmsClient = new KmsClient({ address, retries: 0 });
});
afterEach(() => kmsClient.close());

async function failure<E extends Error>(promise: Promise<unknown>, type: new (...args: never[]) => E): Promise<E> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof type) return err;
    throw err;
  }
  throw new Error(`expected a ${type.name}`);
}

const plaintext = () => new TextEncoder().encode("attack at dawn");

it("sends the CRC32C of every request byte field and accepts a verified, matching answer", async () => {
  const res = await kmsClient.encrypt({ keyId: "k", plaintext: plaintext() });
  expect(received[0]!.plaintextCrc32c).toBe(crc32c(plaintext()));
  expect(res.verifiedPlaintextCrc32c).toBe(true);
  expect(res.ciphertextBlobCrc32c).toBe(crc32c(res.ciphertextBlob));
  const back = await kmsClient.decrypt({ ciphertextBlob: res.ciphertextBlob });
  expect(Buffer.from(back.plaintext).toString()).toBe("attack at dawn");
  expect(received[1]!.ciphertextBlobCrc32c).toBe(crc32c(res.ciphertextBlob));
});

it("gets the service's refusal when the request is corrupted on the way", async () => {
  transport = "corrupt-request";
  const e = await failure(kmsClient.encrypt({ keyId: "k", plaintext: plaintext() }), KmsClientError);
  expect([e.code, e.kmsErrorCode]).toEqual([status.INVALID_ARGUMENT, "Rejected.ChecksumMismatch"]);
  expect(e.message).toMatch(/^plaintext_crc32c:/);
});

it("rejects a response corrupted on the way with an IntegrityError naming the field", async () => {
  transport = "corrupt-response";
  expect((await failure(kmsClient.encrypt({ keyId: "k", plaintext: plaintext() }), IntegrityError)).field).toBe("ciphertext_blob_crc32c");
  expect((await failure(kmsClient.decrypt({ ciphertextBlob: plaintext() }), IntegrityError)).field).toBe("plaintext_crc32c");
  expect((await failure(kmsClient.generateRandom({ numberOfBytes: 16 }), IntegrityError)).field).toBe("random_crc32c");
});

it("checks a batch item by item", async () => {
  const items = [{ keyId: "k", plaintext: plaintext() }, { keyId: "k", plaintext: plaintext() }];
  const res = await kmsClient.batchEncrypt({ items });
  expect(res.results.map((r) => r.response?.verifiedPlaintextCrc32c)).toEqual([true, true]);
  expect((received[0]!.items as Message[]).map((i) => i.plaintextCrc32c)).toEqual([crc32c(plaintext()), crc32c(plaintext())]);
  expect(items[0]).not.toHaveProperty("plaintextCrc32c"); // the caller's request is left as it was
  transport = "corrupt-request";
  expect((await failure(kmsClient.batchEncrypt({ items }), KmsClientError)).message).toMatch(/^items\[1\]\.plaintext_crc32c:/);
  transport = "corrupt-response";
  expect((await failure(kmsClient.batchEncrypt({ items }), IntegrityError)).field).toBe("results[1].response.ciphertext_blob_crc32c");
});

it("refuses a service that never verifies, unless the checks are turned off", async () => {
  transport = "old-service";
  expect((await failure(kmsClient.encrypt({ keyId: "k", plaintext: plaintext() }), IntegrityError)).field).toBe("verified_plaintext_crc32c");
  const unchecked = new KmsClient({ address, retries: 0, crc32c: false });
  try {
    const res = await unchecked.encrypt({ keyId: "k", plaintext: plaintext() });
    expect(res.ciphertextBlob.length).toBe(plaintext().length);
    expect(received[1]!.plaintextCrc32c).toBeUndefined();
  } finally {
    unchecked.close();
  }
});

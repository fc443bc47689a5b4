// KmsClient against an in-process grpc-js server that answers as scripted: retries, deadlines and the
// fields of KmsClientError, without the real stack.
import { create } from "@bufbuild/protobuf";
import { Metadata, Server, ServerCredentials, status } from "@grpc/grpc-js";
import type { ServerUnaryCall, sendUnaryData } from "@grpc/grpc-js";
import { grpcServiceDefinition, kms, kmsResources } from "@kms/proto";
import { KmsClient } from "./client";
import { KmsClientError } from "./errors";

type Answer = { ok: string } | { code: status; details: string; kmsCode?: string } | { delayMs: number };

let server: Server;
let address: string;
let script: Answer[];
let calls: number;

beforeAll(async () => {
  server = new Server();
  const describeKey = (call: ServerUnaryCall<kms.DescribeKeyRequest, unknown>, callback: sendUnaryData<unknown>) => {
    calls++;
    const header = new Metadata();
    header.set("kms-request-id", `req-${calls}`);
    call.sendMetadata(header);
    const answer = script.shift() ?? { ok: call.request.keyId };
    if ("ok" in answer) {
      callback(null, create(kms.DescribeKeyResponseSchema, { keyMetadata: { keyId: answer.ok, keyState: kmsResources.KeyState.ENABLED } }));
    } else if ("delayMs" in answer) {
      setTimeout(() => callback(null, create(kms.DescribeKeyResponseSchema, {})), answer.delayMs);
    } else {
      const trailer = new Metadata();
      if (answer.kmsCode) trailer.set("kms-error-code", answer.kmsCode);
      callback({ code: answer.code, details: answer.details, metadata: trailer });
    }
  };
  server.addService(grpcServiceDefinition(kms.KeyManagementService), { DescribeKey: describeKey });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  address = `127.0.0.1:${port}`;
});
afterAll(() => server.forceShutdown());
beforeEach(() => {
  script = [];
  calls = 0;
});

function client(options: Partial<ConstructorParameters<typeof KmsClient>[0]> = {}): KmsClient {
  return new KmsClient({ address, retries: { retries: 3, baseDelayMs: 1, maxDelayMs: 5 }, ...options });
}

async function failure(promise: Promise<unknown>): Promise<KmsClientError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof KmsClientError) return err;
    throw err;
  }
  throw new Error("expected a failure");
}

it("calls an RPC and returns the typed response", async () => {
  const c = client();
  const res = await c.describeKey({ keyId: "k1" });
  expect(res.keyMetadata?.keyId).toBe("k1");
  expect(res.keyMetadata?.keyState).toBe(kmsResources.KeyState.ENABLED);
  c.close();
});

it("has one method per RPC", () => {
  const c = client();
  for (const method of kms.KeyManagementService.methods) expect(typeof (c as unknown as Record<string, unknown>)[method.localName]).toBe("function");
  expect(kms.KeyManagementService.methods.length).toBeGreaterThanOrEqual(40);
  c.close();
});

it("retries UNAVAILABLE and succeeds", async () => {
  script = [
    { code: status.UNAVAILABLE, details: "hsm-worker is unavailable; retry is safe", kmsCode: "ServiceUnavailable" },
    { code: status.UNAVAILABLE, details: "hsm-worker is unavailable; retry is safe", kmsCode: "ServiceUnavailable" },
  ];
  const c = client();
  expect((await c.describeKey({ keyId: "k2" })).keyMetadata?.keyId).toBe("k2");
  expect(calls).toBe(3);
  c.close();
});

it("gives up after the configured retries with the last error", async () => {
  script = Array.from({ length: 5 }, () => ({ code: status.UNAVAILABLE, details: "database is unavailable; retry is safe", kmsCode: "ServiceUnavailable" }));
  const c = client({ retries: { retries: 2, baseDelayMs: 1, maxDelayMs: 1 } });
  const err = await failure(c.describeKey({ keyId: "k" }));
  expect(err.code).toBe(status.UNAVAILABLE);
  expect(err.requestId).toBe("req-3");
  expect(calls).toBe(3);
  c.close();
});

it("never retries INVALID_ARGUMENT, and surfaces code, kms-error-code, request id and message", async () => {
  script = [{ code: status.INVALID_ARGUMENT, details: "key_id: must be a UUID or alias/<name>", kmsCode: "InvalidParameter" }];
  const c = client();
  const err = await failure(c.describeKey({ keyId: "nope" }));
  expect(err).toBeInstanceOf(KmsClientError);
  expect(err.code).toBe(status.INVALID_ARGUMENT);
  expect(err.codeName).toBe("INVALID_ARGUMENT");
  expect(err.kmsErrorCode).toBe("InvalidParameter");
  expect(err.requestId).toBe("req-1");
  expect(err.message).toBe("key_id: must be a UUID or alias/<name>");
  expect(calls).toBe(1);
  c.close();
});

it("puts a deadline on every call and does not retry DEADLINE_EXCEEDED", async () => {
  script = [{ delayMs: 500 }];
  const c = client({ deadlineMs: 100 });
  const started = Date.now();
  const err = await failure(c.describeKey({ keyId: "slow" }));
  expect(err.code).toBe(status.DEADLINE_EXCEEDED);
  expect(err.kmsErrorCode).toBeUndefined();
  expect(Date.now() - started).toBeLessThan(450);
  expect(calls).toBe(1);
  // A per-call deadline overrides the client's.
  script = [{ delayMs: 150 }];
  await expect(c.describeKey({ keyId: "slow" }, { deadlineMs: 2000 })).resolves.toBeDefined();
  c.close();
});

it("reports UNIMPLEMENTED for an RPC the server lacks, without retrying", async () => {
  const c = client();
  const err = await failure(c.generateRandom({ numberOfBytes: 8 }));
  expect(err.code).toBe(status.UNIMPLEMENTED);
  expect(calls).toBe(0);
  c.close();
});

it("reports UNAVAILABLE when nothing listens, after retrying", async () => {
  const c = new KmsClient({ address: "127.0.0.1:1", deadlineMs: 2000, retries: { retries: 1, baseDelayMs: 1, maxDelayMs: 1 } });
  const err = await failure(c.describeKey({ keyId: "k" }));
  expect(err.code).toBe(status.UNAVAILABLE);
  expect(err.requestId).toBeUndefined();
  c.close();
});

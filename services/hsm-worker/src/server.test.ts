// The gRPC surface over a real Unix socket, on the software-root backend (and a failing fake for the
// internal-error path).
import { mkdtempSync, rmSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { status } from "@grpc/grpc-js";
import type { Server, ServiceError } from "@grpc/grpc-js";
import { ERROR_CODE_KEY, ErrorCode, INVALID_CIPHERTEXT_MESSAGE } from "@kms/errors";
import { createPromiseClient, kmsResources } from "@kms/proto";
import { hsm } from "@kms/proto/internal";
import type { PromiseClient } from "@kms/proto";
import type { Backend } from "./backend";
import { createHsmWorkerServer, listen } from "./server";
import { SoftwareRootBackend } from "./software/software-root";
import { batchClient } from "./testing/batch-client";
import type { BatchClient } from "./testing/batch-client";

const { KeySpec, ProtectionLevel } = kmsResources;

type Client = PromiseClient<(typeof hsm.HsmWorkerService)["method"]>;

let dir: string;
let server: Server;
let client: Client;
/** The hot operations, reached only through BatchStream. */
let batched: BatchClient;
let backend: SoftwareRootBackend;

async function start(b: Backend, socket: string): Promise<{ server: Server; client: Client }> {
  const s = createHsmWorkerServer(b);
  await listen(s, socket);
  return { server: s, client: createPromiseClient(hsm.HsmWorkerService, `unix://${socket}`) };
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), "hsm-worker-server-"));
  backend = SoftwareRootBackend.open(path.join(dir, "data"), 10);
  ({ server, client } = await start(backend, path.join(dir, "run", "worker.sock")));
  batched = batchClient(path.join(dir, "run", "worker.sock"));
});

afterAll(async () => {
  client.close();
  batched.close();
  await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
  rmSync(dir, { recursive: true, force: true });
});

async function grpcError(promise: Promise<unknown>): Promise<{ code: number; details: string; errorCode: unknown }> {
  try {
    await promise;
  } catch (err) {
    const e = err as ServiceError;
    return { code: e.code, details: e.details, errorCode: e.metadata.get(ERROR_CODE_KEY)[0] };
  }
  throw new Error("expected an error");
}

async function newKey(id: string): Promise<hsm.WrappedKey> {
  const made = await client.generateKeyMaterial({ keySpec: KeySpec.AES_256, protectionLevel: ProtectionLevel.SOFTWARE, label: id, keyVersionId: id });
  expect(made.rootKeyId).toBe(backend.rootKeyId);
  return { $typeName: "kms.hsm.v1.WrappedKey", keyVersionId: id, keySpec: KeySpec.AES_256, protectionLevel: ProtectionLevel.SOFTWARE, wrappedMaterial: made.wrappedMaterial, rootKeyId: made.rootKeyId };
}

describe("hsm-worker gRPC server", () => {
  it("listens on a 0600 socket in a 0700 directory", () => {
    expect(statSync(path.join(dir, "run", "worker.sock")).mode & 0o777).toBe(0o600);
    expect(statSync(path.join(dir, "run")).mode & 0o777).toBe(0o700);
  });

  it("reports its status", async () => {
    const s = await client.getStatus({});
    expect([s.backend, s.rootKeyId, s.description, s.hsmKeysSupported]).toEqual([
      hsm.Backend.SOFTWARE_ROOT,
      backend.rootKeyId,
      `software root key ${path.join(dir, "data", "root-key")}`,
      false,
    ]);
  });

  it("encrypts, decrypts and re-encrypts", async () => {
    const a = await newKey("kv-a");
    const b = await newKey("kv-b");
    const { sealed } = await batched.encrypt({ key: a, plaintext: Buffer.from("hello"), aad: Buffer.from("ctx") });
    expect(Buffer.from((await batched.decrypt({ key: a, sealed, aad: Buffer.from("ctx") })).plaintext).toString()).toBe("hello");
    const re = await batched.reEncrypt({ sourceKey: a, sourceSealed: sealed, sourceAad: Buffer.from("ctx"), destinationKey: b, destinationAad: Buffer.from("ctx2") });
    expect(Buffer.from((await batched.decrypt({ key: b, sealed: re.sealed, aad: Buffer.from("ctx2") })).plaintext).toString()).toBe("hello");
    expect(await grpcError(batched.decrypt({ key: a, sealed, aad: Buffer.from("other") }))).toEqual({
      code: status.INVALID_ARGUMENT,
      details: INVALID_CIPHERTEXT_MESSAGE,
      errorCode: ErrorCode.InvalidCiphertext,
    });
    expect(await grpcError(batched.reEncrypt({ sourceKey: a, sourceSealed: sealed, sourceAad: Buffer.from("ctx") }))).toEqual({
      code: status.INVALID_ARGUMENT,
      details: "destination_key: is required",
      errorCode: ErrorCode.InvalidParameter,
    });
  });

  it("generates data keys with and without plaintext", async () => {
    const key = await newKey("kv-dk");
    const withPlaintext = await batched.generateDataKey({ key, numberOfBytes: 32, aad: Buffer.from("x"), returnPlaintext: true });
    expect(withPlaintext.plaintext.length).toBe(32);
    expect(Buffer.from(withPlaintext.plaintext).equals(Buffer.alloc(32))).toBe(false);
    const opened = await batched.decrypt({ key, sealed: withPlaintext.sealed, aad: Buffer.from("x") });
    expect(Buffer.from(opened.plaintext)).toEqual(Buffer.from(withPlaintext.plaintext));
    const without = await batched.generateDataKey({ key, numberOfBytes: 1024, aad: Buffer.from("x"), returnPlaintext: false });
    expect([without.plaintext.length, without.sealed.length]).toEqual([0, 12 + 1024 + 16]);
    for (const n of [0, 1025]) {
      expect(await grpcError(batched.generateDataKey({ key, numberOfBytes: n }))).toEqual({
        code: status.INVALID_ARGUMENT,
        details: `number_of_bytes: must be between 1 and 1024, got ${n}`,
        errorCode: ErrorCode.InvalidParameter,
      });
    }
  });

  it("generates random bytes within limits", async () => {
    expect((await client.generateRandom({ numberOfBytes: 17 })).random.length).toBe(17);
    expect((await grpcError(client.generateRandom({ numberOfBytes: -1 }))).code).toBe(status.INVALID_ARGUMENT);
  });

  it("refuses HSM keys on the software root with FAILED_PRECONDITION", async () => {
    const err = await grpcError(client.generateKeyMaterial({ keySpec: KeySpec.AES_256, protectionLevel: ProtectionLevel.HSM }));
    expect([err.code, err.errorCode]).toEqual([status.FAILED_PRECONDITION, ErrorCode.HsmUnsupported]);
    expect(err.details).toContain("PROTECTION_LEVEL_HSM");
  });

  it("has no token to list on the software root", async () => {
    expect(await client.listTokenObjects({})).toMatchObject({ hasToken: false, objects: [] });
  });

  it("reaches the hot operations only through BatchStream", () => {
    const unary = hsm.HsmWorkerService.methods.filter((m) => m.methodKind === "unary").map((m) => m.name);
    for (const hot of ["Encrypt", "Decrypt", "ReEncrypt", "GenerateDataKey", "Sign", "GenerateMac"]) expect(unary).not.toContain(hot);
  });

  it("forgets keys", async () => {
    const key = await newKey("kv-f");
    await batched.encrypt({ key, plaintext: Buffer.from("x") });
    await client.forgetKeys({ keyVersionIds: ["kv-f"] });
    expect((await batched.encrypt({ key, plaintext: Buffer.from("x") })).sealed.length).toBe(29);
  });

  it("answers an unexpected failure with a fixed INTERNAL message and logs the cause as one JSON line", async () => {
    const failing = { ...({} as Backend), refreshRoots: async () => false, status: () => { throw new Error("disk on fire"); } } as Backend;
    const socket = path.join(dir, "run2", "worker.sock");
    const other = await start(failing, socket);
    const lines: string[] = [];
    const spy = jest.spyOn(process.stderr, "write").mockImplementation((chunk) => {
      lines.push(String(chunk));
      return true;
    });
    try {
      expect(await grpcError(other.client.getStatus({}))).toEqual({ code: status.INTERNAL, details: "internal error", errorCode: ErrorCode.Internal });
    } finally {
      spy.mockRestore();
      other.client.close();
      await new Promise<void>((resolve) => other.server.tryShutdown(() => resolve()));
    }
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({ level: "error", msg: "GetStatus failed", error: "InternalError: unexpected error <- Error: disk on fire" });
  });

  it("replaces a stale socket file on start", async () => {
    const socket = path.join(dir, "run", "worker.sock");
    const second = createHsmWorkerServer(backend);
    // The first server still has the file; a restarted worker finds it there.
    await listen(second, socket);
    await new Promise<void>((resolve) => second.tryShutdown(() => resolve()));
    expect(statSync(socket, { throwIfNoEntry: false })).toBeUndefined();
  });
});

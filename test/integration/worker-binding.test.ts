// Issue 15 #1 at the worker socket: someone who can call the hsm-worker directly (a compromised kms-api,
// or anything else in the pod) and read the wrapped material from the database presents a version's
// material as something it is not. The worker must refuse each with the one bad-material error.
import path from "node:path";
import postgres from "postgres";
import { status } from "@grpc/grpc-js";
import type { ServiceError } from "@grpc/grpc-js";
import { createPromiseClient, kmsResources } from "@kms/proto";
import { hsm } from "@kms/proto/internal";
import { batchClient } from "../../services/hsm-worker/src/testing/batch-client";
import type { BatchClient } from "../../services/hsm-worker/src/testing/batch-client";
import { errorCode, startStack } from "../harness";
import type { Stack } from "../harness";

jest.setTimeout(120_000);

const { KeySpec, KeyUsage, ProtectionLevel } = kmsResources;
const REFUSED = [status.INVALID_ARGUMENT, "InvalidParameter", "key.wrapped_material: does not unwrap under the root key"];

let stack: Stack;
let worker: ReturnType<typeof newWorkerClient>;
/** The hot operations, reached only through BatchStream. */
let batched: BatchClient;
let sql: postgres.Sql;

const newWorkerClient = (socket: string) => createPromiseClient(hsm.HsmWorkerService, `unix://${socket}`);

beforeAll(async () => {
  stack = await startStack();
  worker = newWorkerClient(path.resolve(stack.workerEnv.KMS_WORKER_SOCKET!));
  batched = batchClient(path.resolve(stack.workerEnv.KMS_WORKER_SOCKET!));
  sql = postgres(stack.db.url, { max: 1, onnotice: () => {} });
});
afterAll(async () => {
  worker?.close();
  batched?.close();
  await sql?.end();
  await stack?.stop();
});

/** A key made through kms-api, and its primary version's row as the database holds it. */
async function stored(keySpec: kmsResources.KeySpec, keyUsage: kmsResources.KeyUsage, protectionLevel: kmsResources.ProtectionLevel) {
  const keyId = (await stack.client.createKey({ keySpec, keyUsage, protectionLevel })).keyMetadata!.keyId;
  const [row] = await sql<{ keyVersionId: string; wrappedMaterial: Buffer; rootKeyId: string }[]>`
    SELECT v.key_version_id::text AS "keyVersionId", v.wrapped_material AS "wrappedMaterial", v.root_key_id AS "rootKeyId"
    FROM keys k JOIN key_versions v ON v.key_version_id = k.primary_key_version_id WHERE k.key_id = ${keyId}`;
  return { keyVersionId: row!.keyVersionId, keySpec, protectionLevel, wrappedMaterial: row!.wrappedMaterial, rootKeyId: row!.rootKeyId };
}

async function outcome(call: Promise<unknown>): Promise<unknown[]> {
  try {
    await call;
    return ["succeeded"];
  } catch (err) {
    const e = err as ServiceError;
    return [e.code, errorCode(e.metadata), e.details];
  }
}

describe("the worker, called at its socket with material from the database", () => {
  it("refuses an HSM-level version's material presented as SOFTWARE", async () => {
    const key = await stored(KeySpec.AES_256, KeyUsage.ENCRYPT_DECRYPT, ProtectionLevel.HSM);
    const { sealed } = await batched.encrypt({ key, plaintext: Buffer.from("as stored"), aad: Buffer.from("aad") });
    const asSoftware = { ...key, protectionLevel: ProtectionLevel.SOFTWARE };
    expect(await outcome(batched.encrypt({ key: asSoftware, plaintext: Buffer.from("x") }))).toEqual(REFUSED);
    expect(await outcome(batched.decrypt({ key: asSoftware, sealed, aad: Buffer.from("aad") }))).toEqual(REFUSED);
    // As stored, it still works.
    expect(Buffer.from((await batched.decrypt({ key, sealed, aad: Buffer.from("aad") })).plaintext).toString()).toBe("as stored");
  });

  it.each([
    ["HSM", ProtectionLevel.HSM],
    ["SOFTWARE", ProtectionLevel.SOFTWARE],
  ] as const)("refuses %s AES-256 material presented as HMAC-SHA256 (the same wrapped length)", async (_n, level) => {
    const key = await stored(KeySpec.AES_256, KeyUsage.ENCRYPT_DECRYPT, level);
    const asHmac = { ...key, keySpec: KeySpec.HMAC_SHA256 };
    expect(await outcome(batched.generateMac({ key: asHmac, message: Buffer.from("m") }))).toEqual(REFUSED);
    expect(await outcome(worker.verifyMac({ key: asHmac, message: Buffer.from("m"), mac: Buffer.alloc(32) }))).toEqual(REFUSED);
  });

  it("refuses a version's material presented under another version id", async () => {
    const key = await stored(KeySpec.AES_256, KeyUsage.ENCRYPT_DECRYPT, ProtectionLevel.HSM);
    const other = await stored(KeySpec.AES_256, KeyUsage.ENCRYPT_DECRYPT, ProtectionLevel.HSM);
    const moved = { ...key, keyVersionId: other.keyVersionId };
    expect(await outcome(batched.encrypt({ key: moved, plaintext: Buffer.from("x") }))).toEqual(REFUSED);
    const signing = await stored(KeySpec.EC_P256, KeyUsage.SIGN_VERIFY, ProtectionLevel.HSM);
    const movedSigning = { ...signing, keyVersionId: other.keyVersionId };
    expect(await outcome(batched.sign({ key: movedSigning, algorithm: kmsResources.SigningAlgorithm.ECDSA_SHA_256, input: { case: "digest", value: Buffer.alloc(32) } }))).toEqual(REFUSED);
  });
});

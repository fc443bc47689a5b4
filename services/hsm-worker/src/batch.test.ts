import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { create } from "@bufbuild/protobuf";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { status } from "@grpc/grpc-js";
import { ErrorCode, INVALID_CIPHERTEXT_MESSAGE } from "@kms/errors";
import { kmsResources } from "@kms/proto";
import { hsm } from "@kms/proto/internal";
import { batch } from "./batch";
import { SoftwareRootBackend } from "./software/software-root";
import { wireBackend } from "./testing/wire-backend";
import type { WireBackend } from "./testing/wire-backend";

const { KeySpec, ProtectionLevel } = kmsResources;
let dir: string;
let backend: WireBackend<SoftwareRootBackend>;

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), "batch-"));
  backend = wireBackend(SoftwareRootBackend.open(path.join(dir, "data"), 16));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it("runs every operation and gives each its own outcome, in order", async () => {
  const { wrappedMaterial } = await backend.generateKeyMaterial(KeySpec.AES_256, ProtectionLevel.SOFTWARE, "v1");
  const key = create(hsm.WrappedKeySchema, { keyVersionId: "v1", keySpec: KeySpec.AES_256, protectionLevel: ProtectionLevel.SOFTWARE, wrappedMaterial, rootKeyId: backend.rootKeyId });
  const aad = Buffer.from("aad");
  const sealed = await backend.encrypt(key, Buffer.from("hello"), aad);
  const operations: MessageInitShape<typeof hsm.OperationSchema>[] = [
    { op: { case: "encrypt", value: { key, plaintext: Buffer.from("one"), aad } } },
    { op: { case: "decrypt", value: { key, sealed, aad } } },
    { op: { case: "decrypt", value: { key, sealed, aad: Buffer.from("other") } } },
    { op: { case: "generateDataKey", value: { key, numberOfBytes: 16, aad, returnPlaintext: true } } },
    { op: { case: "generateDataKey", value: { key, numberOfBytes: 0, aad, returnPlaintext: true } } },
    {},
  ];
  const { results, wipeAfterSend } = await batch(backend.checked, operations.map((op) => create(hsm.OperationSchema, op)));
  const r = results.map((x) => x.result);
  expect(r.map((x) => x.case)).toEqual(["encrypt", "decrypt", "error", "generateDataKey", "error", "error"]);
  expect(Buffer.from((r[1]!.value as hsm.DecryptResponse).plaintext).toString()).toBe("hello");
  expect(r[2]!.value).toMatchObject({ code: status.INVALID_ARGUMENT, message: INVALID_CIPHERTEXT_MESSAGE, errorCode: ErrorCode.InvalidCiphertext });
  expect((r[3]!.value as hsm.GenerateDataKeyResponse).plaintext.length).toBe(16);
  expect(r[4]!.value).toMatchObject({ code: status.INVALID_ARGUMENT, errorCode: ErrorCode.InvalidParameter });
  expect(r[5]!.value).toMatchObject({ code: status.INVALID_ARGUMENT, message: "operations: an operation names no request" });
  // The data key's plaintext is zeroed once the reply is serialised.
  expect(wipeAfterSend?.length).toBeGreaterThan(0);
});

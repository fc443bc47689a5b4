// State survives restarts, and a dead worker means UNAVAILABLE (never INTERNAL, never a hang) until
// it is back.
import { randomBytes } from "node:crypto";
import { status } from "@grpc/grpc-js";
import { kmsResources } from "@kms/proto";
import { errorCode, grpcError, startStack } from "../harness";
import type { Stack } from "../harness";

const { ProtectionLevel } = kmsResources;

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(async () => {
  await stack?.stop();
});

it("decrypts after both services restart", async () => {
  const blobs = [];
  for (const protectionLevel of [ProtectionLevel.HSM, ProtectionLevel.SOFTWARE]) {
    const keyId = (await stack.client.createKey({ protectionLevel })).keyMetadata!.keyId;
    const plaintext = randomBytes(64);
    const { ciphertextBlob } = await stack.client.encrypt({ keyId, plaintext, encryptionContext: { r: "1" } });
    blobs.push({ plaintext, ciphertextBlob });
  }
  await stack.worker.stop();
  await stack.startWorker();
  await stack.restartApi();
  for (const { plaintext, ciphertextBlob } of blobs) {
    const dec = await stack.client.decrypt({ ciphertextBlob, encryptionContext: { r: "1" } });
    expect(Buffer.from(dec.plaintext)).toEqual(plaintext);
  }
});

it("answers UNAVAILABLE while the worker is dead and recovers when it is back", async () => {
  const keyId = (await stack.client.createKey({ protectionLevel: ProtectionLevel.HSM })).keyMetadata!.keyId;
  const { ciphertextBlob } = await stack.client.encrypt({ keyId, plaintext: Buffer.from("before") });

  stack.worker.kill("SIGKILL");
  await stack.worker.exited;
  const started = Date.now();
  const err = await grpcError(stack.client.encrypt({ keyId, plaintext: Buffer.from("during") }, { deadline: 10_000 }));
  expect(err.code).toBe(status.UNAVAILABLE);
  expect(errorCode(err.metadata)).toBe("ServiceUnavailable");
  // Bounded by the worker deadline (3 s in the harness), well inside the client's own 10 s.
  expect(Date.now() - started).toBeLessThan(9_000);
  const decErr = await grpcError(stack.client.decrypt({ ciphertextBlob }));
  expect(decErr.code).toBe(status.UNAVAILABLE);

  await stack.startWorker();
  let recovered = false;
  for (let i = 0; i < 50 && !recovered; i++) {
    try {
      const dec = await stack.client.decrypt({ ciphertextBlob });
      expect(Buffer.from(dec.plaintext).toString()).toBe("before");
      recovered = true;
    } catch (e) {
      expect((e as { code: number }).code).toBe(status.UNAVAILABLE);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  expect(recovered).toBe(true);
});

it("drains in-flight calls on SIGTERM", async () => {
  const keyId = (await stack.client.createKey({ protectionLevel: ProtectionLevel.SOFTWARE })).keyMetadata!.keyId;
  const calls = Array.from({ length: 20 }, () => stack.client.encrypt({ keyId, plaintext: Buffer.from("drain") }));
  const exited = stack.api.stop();
  const results = await Promise.allSettled(calls);
  // Calls already accepted finish; none gets INTERNAL.
  for (const r of results) {
    if (r.status === "rejected") expect((r.reason as { code: number }).code).toBe(status.UNAVAILABLE);
  }
  expect(await exited).toBe(0);
});

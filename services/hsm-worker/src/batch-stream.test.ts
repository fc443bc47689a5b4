// BatchStream over a real Unix socket on the software-root backend: answers by id, per-operation
// outcomes, a whole batch refused, and a graceful shutdown that ends the stream once it is answered.
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { create } from "@bufbuild/protobuf";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Client, credentials, status } from "@grpc/grpc-js";
import type { Server } from "@grpc/grpc-js";
import { kmsResources, openBidiStream } from "@kms/proto";
import { hsm } from "@kms/proto/internal";
import type { Backend } from "./backend";
import { createHsmWorkerServer, listen, shutdown } from "./server";
import { SoftwareRootBackend } from "./software/software-root";
import { wireBackend } from "./testing/wire-backend";
import type { WireBackend } from "./testing/wire-backend";

const { KeySpec, ProtectionLevel } = kmsResources;

let dir: string;
let socket: string;
let backend: WireBackend<SoftwareRootBackend>;
let key: MessageInitShape<typeof hsm.WrappedKeySchema>;

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), "hsm-worker-stream-"));
  socket = path.join(dir, "run", "worker.sock");
  backend = wireBackend(SoftwareRootBackend.open(path.join(dir, "data"), 10));
  const made = await backend.generateKeyMaterial(KeySpec.AES_256, ProtectionLevel.SOFTWARE, "k1");
  key = { keyVersionId: "k1", keySpec: KeySpec.AES_256, protectionLevel: ProtectionLevel.SOFTWARE, wrappedMaterial: made.wrappedMaterial, rootKeyId: backend.rootKeyId };
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function started(b: Backend = backend.checked): Promise<{ server: Server; channel: Client }> {
  const server = createHsmWorkerServer(b);
  await listen(server, socket);
  return { server, channel: new Client(`unix://${socket}`, credentials.createInsecure()) };
}

const encrypt = (text: string): MessageInitShape<typeof hsm.OperationSchema> => ({
  op: { case: "encrypt", value: { key, plaintext: Buffer.from(text), aad: Buffer.from("aad") } },
});

/** Everything the stream says until it ends, and how it ended. */
function collect(call: ReturnType<typeof openBidiStream<typeof hsm.BatchStreamRequestSchema, typeof hsm.BatchStreamResponseSchema>>) {
  const answers: hsm.BatchStreamResponse[] = [];
  call.on("data", (m: hsm.BatchStreamResponse) => answers.push(m));
  const ended = new Promise<number>((resolve) => call.on("status", (s: { code: number }) => resolve(s.code)));
  call.on("error", () => {});
  return { answers, ended };
}

describe("BatchStream", () => {
  it("answers each batch with its id and a result per operation", async () => {
    const { server, channel } = await started();
    const call = openBidiStream(channel, hsm.HsmWorkerService.method.batchStream);
    const { answers, ended } = collect(call);
    call.write(create(hsm.BatchStreamRequestSchema, { id: 7, operations: [encrypt("one"), encrypt("two")] }));
    const badKey = { ...key, wrappedMaterial: Buffer.alloc(40, 1) };
    call.write(create(hsm.BatchStreamRequestSchema, { id: 8, operations: [{ op: { case: "encrypt", value: { key: badKey, plaintext: Buffer.from("x") } } }, encrypt("three")] }));
    call.end();
    expect(await ended).toBe(status.OK); // the worker ends its side once both are answered
    expect(answers.map((a) => a.id).sort()).toEqual([7, 8]);
    const seven = answers.find((a) => a.id === 7)!;
    expect(seven.results.map((r) => r.result.case)).toEqual(["encrypt", "encrypt"]);
    const sealed = seven.results[1]!.result.value as hsm.EncryptResponse;
    const opened = await backend.decrypt(create(hsm.WrappedKeySchema, key), sealed.sealed, Buffer.from("aad"));
    expect(Buffer.from(opened).toString()).toBe("two");
    const eight = answers.find((a) => a.id === 8)!;
    expect(eight.results[0]!.result.case).toBe("error");
    expect(eight.results[1]!.result.case).toBe("encrypt");
    channel.close();
    await shutdown(server);
  });

  it("answers a batch it refuses whole with the error for every operation", async () => {
    const { server, channel } = await started();
    const call = openBidiStream(channel, hsm.HsmWorkerService.method.batchStream);
    const { answers, ended } = collect(call);
    call.write(create(hsm.BatchStreamRequestSchema, { id: 1, operations: Array.from({ length: 10_001 }, () => ({})) }));
    call.end();
    expect(await ended).toBe(status.OK);
    expect(answers).toHaveLength(1);
    expect(answers[0]!.results).toHaveLength(10_001);
    for (const r of answers[0]!.results) expect(r.result).toMatchObject({ case: "error", value: { code: status.INVALID_ARGUMENT } });
    channel.close();
    await shutdown(server);
  });

  it("on shutdown, answers the batches in flight, then ends the stream and refuses new ones", async () => {
    // A backend whose encryptions wait until the test lets them go.
    let reached!: () => void;
    const inFlight = new Promise<void>((r) => (reached = r));
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    const slow = new Proxy(backend.checked, {
      get(target, prop) {
        const value: unknown = Reflect.get(target, prop, target);
        if (prop !== "encrypt" || typeof value !== "function") return typeof value === "function" ? value.bind(target) : value;
        return async (...args: unknown[]) => {
          reached();
          await released;
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
    const { server, channel } = await started(slow);
    const call = openBidiStream(channel, hsm.HsmWorkerService.method.batchStream);
    const { answers, ended } = collect(call);
    call.write(create(hsm.BatchStreamRequestSchema, { id: 1, operations: [encrypt("in flight")] }));
    await inFlight;
    let done = false;
    const stopped = shutdown(server).then(() => (done = true)); // kms-api keeps its side open: the worker must not wait for it
    await new Promise((r) => setTimeout(r, 50));
    expect(done).toBe(false); // the batch is still being worked on
    release();
    expect(await ended).toBe(status.OK);
    await stopped;
    expect(answers.map((a) => a.id)).toEqual([1]);
    expect(answers[0]!.results[0]!.result.case).toBe("encrypt");
    const next = openBidiStream(channel, hsm.HsmWorkerService.method.batchStream);
    const refused = collect(next);
    next.write(create(hsm.BatchStreamRequestSchema, { id: 2, operations: [encrypt("too late")] }));
    expect(await refused.ended).toBe(status.UNAVAILABLE);
    expect(refused.answers).toEqual([]);
    channel.close();
  });
});

// WorkerStream against a scripted worker on a real Unix socket: how batches are matched to answers and
// how each way of losing the worker reaches the batches waiting on it. The real worker's side is tested
// in services/hsm-worker (batch-stream.test.ts) and both together by every integration test.
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { create } from "@bufbuild/protobuf";
import { Client, Server, ServerCredentials, credentials, status } from "@grpc/grpc-js";
import type { ServerDuplexStream, ServiceError } from "@grpc/grpc-js";
import { fromPeerError } from "@kms/errors";
import { grpcServiceDefinition } from "@kms/proto";
import { hsm } from "@kms/proto/internal";
import { WorkerStream } from "./worker-stream";

type Call = ServerDuplexStream<hsm.BatchStreamRequest, hsm.BatchStreamResponse>;

let dir: string;
beforeAll(() => (dir = mkdtempSync(path.join(os.tmpdir(), "worker-stream-"))));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A worker whose streams the test drives: each batch received is handed to `onBatch`. */
async function scriptedWorker(onBatch: (call: Call, request: hsm.BatchStreamRequest) => void) {
  const socket = path.join(dir, `${Math.random().toString(36).slice(2)}.sock`);
  const server = new Server();
  const streams: Call[] = [];
  server.addService(grpcServiceDefinition(hsm.HsmWorkerService), {
    BatchStream: (call: Call) => {
      streams.push(call);
      call.on("data", (request: hsm.BatchStreamRequest) => onBatch(call, request));
      call.on("error", () => {});
    },
  });
  await new Promise<void>((resolve, reject) => server.bindAsync(`unix://${socket}`, ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())));
  const channel = new Client(`unix://${socket}`, credentials.createInsecure());
  return { server, channel, streams, worker: new WorkerStream(channel) };
}

function stop(w: Awaited<ReturnType<typeof scriptedWorker>>): void {
  w.worker.close();
  w.channel.close();
  w.server.forceShutdown();
}

const answer = (call: Call, id: number) =>
  call.write(create(hsm.BatchStreamResponseSchema, { id, results: [{ result: { case: "encrypt", value: { sealed: Buffer.from(`answer ${id}`) } } }] }));

const soon = () => new Date(Date.now() + 5000);

async function failure(promise: Promise<unknown>): Promise<ServiceError> {
  try {
    await promise;
  } catch (err) {
    return err as ServiceError;
  }
  throw new Error("expected the batch to fail");
}

describe("WorkerStream", () => {
  it("sends every batch on one stream and matches answers by id, in any order", async () => {
    const held: [Call, number][] = [];
    const w = await scriptedWorker((call, request) => {
      held.push([call, request.id]);
      if (held.length === 2) for (const [c, id] of held.reverse()) answer(c, id); // the second batch first
    });
    const [first, second] = await Promise.all([w.worker.send([{}], soon()), w.worker.send([{}, {}], soon())]);
    expect(Buffer.from((first.results[0]!.result.value as hsm.EncryptResponse).sealed).toString()).toBe(`answer ${first.id}`);
    expect(second.id).not.toBe(first.id);
    expect(w.streams).toHaveLength(1);
    stop(w);
  });

  it("fails a batch not answered by its deadline alone, and ignores its late answer", async () => {
    let late: (() => void) | undefined;
    const w = await scriptedWorker((call, request) => {
      if (late === undefined) late = () => answer(call, request.id); // the first batch hangs
      else answer(call, request.id);
    });
    const err = await failure(w.worker.send([{}], new Date(Date.now() + 100)));
    expect(err.code).toBe(status.DEADLINE_EXCEEDED);
    expect(fromPeerError(err, "HSM worker")).toMatchObject({ status: status.UNAVAILABLE }); // what the caller gets
    late!();
    const next = await w.worker.send([{}], soon());
    expect(next.results).toHaveLength(1);
    expect(w.streams).toHaveLength(1);
    stop(w);
  });

  it("when the worker ends the stream, fails what waits on it and opens a new one for the next batch", async () => {
    let ending = true;
    const w = await scriptedWorker((call, request) => {
      if (ending) {
        ending = false;
        call.end(); // as a stopping worker does: this batch gets no answer
      } else {
        answer(call, request.id);
      }
    });
    const err = await failure(w.worker.send([{}], soon()));
    expect(err.code).toBe(status.UNAVAILABLE);
    const next = await w.worker.send([{}], soon());
    expect(next.results).toHaveLength(1);
    expect(w.streams).toHaveLength(2);
    stop(w);
  });

  it("when the worker goes away, fails what waits at once, not at the deadline", async () => {
    const w = await scriptedWorker(() => {}); // never answers
    // A deadline far beyond the test's own timeout: only a prompt failure lets the test finish.
    const waiting = failure(w.worker.send([{}], new Date(Date.now() + 600_000)));
    await new Promise((r) => setTimeout(r, 50));
    w.server.forceShutdown(); // its calls are cancelled, as when the worker process dies mid-batch
    const err = await waiting;
    expect([status.CANCELLED, status.UNAVAILABLE]).toContain(err.code);
    expect(fromPeerError(err, "HSM worker")).toMatchObject({ status: status.UNAVAILABLE }); // what the caller gets
    const after = await failure(w.worker.send([{}], soon()));
    expect(after.code).toBe(status.UNAVAILABLE); // nothing listens any more
    w.worker.close();
    w.channel.close();
  });

  it("close() fails the batches still waiting", async () => {
    const w = await scriptedWorker(() => {});
    const waiting = failure(w.worker.send([{}], soon()));
    await new Promise((r) => setTimeout(r, 50));
    w.worker.close();
    expect((await waiting).code).toBe(status.CANCELLED);
    w.channel.close();
    w.server.forceShutdown();
  });
});

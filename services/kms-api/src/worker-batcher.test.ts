// When a batch leaves: a lone call's at once (after the current microtasks), everyone else's on the next
// turn, so that the operations issued in one turn share a batch. Steps are counted, not timed.
import { create } from "@bufbuild/protobuf";
import { hsm } from "@kms/proto/internal";
import { WorkerBatcher } from "./worker-batcher";
import type { SendBatch } from "./worker-batcher";

// The batcher does not look inside an operation: an empty EncryptRequest stands for any.
const op = () => ({ op: { case: "encrypt" as const, value: {} } });
const deadline = () => new Date(Date.now() + 10_000);

function recorder() {
  const sent: number[] = [];
  const send: SendBatch = async (operations) => {
    sent.push(operations.length);
    return { results: operations.map(() => create(hsm.OperationResultSchema, { result: { case: "encrypt", value: {} } })) };
  };
  return { sent, send };
}

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe("WorkerBatcher", () => {
  it("sends a lone call's operation before the next turn, once this turn's microtasks are done", async () => {
    const { sent, send } = recorder();
    const batcher = new WorkerBatcher(send);
    batcher.alone = () => true;
    const result = batcher.run(op(), deadline());
    expect(sent).toEqual([]); // not synchronously: operations issued with it in this microtask run still join
    await Promise.resolve();
    await Promise.resolve();
    expect(sent).toEqual([1]);
    await expect(result).resolves.toMatchObject({ case: "encrypt" });
  });

  it("gathers the operations issued in one turn into one batch when other calls are in progress", async () => {
    const { sent, send } = recorder();
    const batcher = new WorkerBatcher(send);
    batcher.alone = () => false;
    const first = batcher.run(op(), deadline());
    for (let i = 0; i < 10; i++) await Promise.resolve(); // other calls' microtasks
    const second = batcher.run(op(), deadline());
    expect(sent).toEqual([]);
    await nextTurn();
    expect(sent).toEqual([2]);
    await Promise.all([first, second]);
    expect([batcher.batches, batcher.operations]).toEqual([1, 2]);
  });

  it("still gathers what a lone call issues in the same microtask run (a batch request's items)", async () => {
    const { sent, send } = recorder();
    const batcher = new WorkerBatcher(send);
    batcher.alone = () => true;
    await Promise.all([1, 2, 3].map(() => batcher.run(op(), deadline())));
    expect(sent).toEqual([3]);
  });
});

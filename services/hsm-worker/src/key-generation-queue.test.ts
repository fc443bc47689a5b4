import { status } from "@grpc/grpc-js";
import { ErrorCode, KmsError } from "@kms/errors";
import { kmsResources } from "@kms/proto";
import { isSlowGeneration, KeyGenerationQueue } from "./key-generation-queue";

/** A generation that ends when the test says so. */
function gate(): { promise: Promise<string>; open: (value: string) => void } {
  let open!: (value: string) => void;
  const promise = new Promise<string>((resolve) => (open = resolve));
  return { promise, open };
}

async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await Promise.resolve();
}

function codeOf(err: unknown): [number, string] {
  if (!(err instanceof KmsError)) throw err;
  return [err.status, err.code];
}

describe("KeyGenerationQueue", () => {
  it("runs at most `concurrency` generations, the others in FIFO order", async () => {
    const queue = new KeyGenerationQueue({ concurrency: 2, queue: 8 });
    const gates = [gate(), gate(), gate(), gate()];
    const started: number[] = [];
    const runs = gates.map((g, i) =>
      queue.run(async () => {
        started.push(i);
        return g.promise;
      }),
    );
    await settle();
    expect({ started, active: queue.active, waiting: queue.waiting }).toEqual({ started: [0, 1], active: 2, waiting: 2 });
    gates[1]!.open("b");
    await settle();
    expect({ started, active: queue.active, waiting: queue.waiting }).toEqual({ started: [0, 1, 2], active: 2, waiting: 1 });
    gates[0]!.open("a");
    gates[2]!.open("c");
    gates[3]!.open("d");
    expect(await Promise.all(runs)).toEqual(["a", "b", "c", "d"]);
    expect({ active: queue.active, waiting: queue.waiting }).toEqual({ active: 0, waiting: 0 });
  });

  it("refuses a generation beyond the backlog with RESOURCE_EXHAUSTED, Throttling", async () => {
    const queue = new KeyGenerationQueue({ concurrency: 1, queue: 1 });
    const g = gate();
    const first = queue.run(() => g.promise);
    const second = queue.run(async () => "second");
    const third = await queue.run(async () => "third").catch(codeOf);
    expect(third).toEqual([status.RESOURCE_EXHAUSTED, ErrorCode.Throttled]);
    g.open("first");
    expect([await first, await second]).toEqual(["first", "second"]);
  });

  it("frees the slot when a generation fails", async () => {
    const queue = new KeyGenerationQueue({ concurrency: 1, queue: 0 });
    const failed = await queue.run(async () => Promise.reject(new KmsError(ErrorCode.Internal, "boom"))).catch(codeOf);
    expect(failed).toEqual([status.INTERNAL, ErrorCode.Internal]);
    expect(await queue.run(async () => "next")).toBe("next");
  });

  it("drops a waiting generation whose caller has gone, and never runs it", async () => {
    const queue = new KeyGenerationQueue({ concurrency: 1, queue: 4 });
    const g = gate();
    const first = queue.run(() => g.promise);
    const gone = new AbortController();
    let ranAbandoned = false;
    const abandoned = queue.run(async () => {
      ranAbandoned = true;
      return "abandoned";
    }, gone.signal);
    const last = queue.run(async () => "last");
    await settle();
    expect(queue.waiting).toBe(2);
    gone.abort();
    expect(await abandoned.catch(codeOf)).toEqual([status.UNAVAILABLE, ErrorCode.Unavailable]);
    expect(queue.waiting).toBe(1);
    g.open("first");
    expect([await first, await last, ranAbandoned]).toEqual(["first", "last", false]);
  });

  it("queues RSA generation only", () => {
    const { KeySpec } = kmsResources;
    const slow = Object.values(KeySpec).filter((v): v is kmsResources.KeySpec => typeof v === "number" && isSlowGeneration(v));
    expect(slow).toEqual([KeySpec.RSA_2048, KeySpec.RSA_3072, KeySpec.RSA_4096]);
  });
});

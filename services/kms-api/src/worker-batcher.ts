// Coalesces worker operations issued in the same event-loop turn into one batch. Per-call gRPC
// overhead on the kms-api → worker hop is as large as a whole client call, so under concurrency this
// pays it once per batch instead of once per request: the flush runs on setImmediate, after the I/O
// that produced this turn's requests. A lone call (alone(): nothing else in progress that could join)
// does not wait for the turn to end: its flush runs once the current microtasks are done. Measured at
// 1 in flight, the setImmediate wait was ~0.25 ms a call, the microtask's ~0.02 ms; a microtask flush
// for every batch, or whenever no batch was at the worker, split the batches under load (requests
// arrive in separate I/O callbacks) and cost CPU per call (docs/performance.md).
import type { MessageInitShape } from "@bufbuild/protobuf";
import { InternalError, errorOfOutcome, fromPeerError } from "@kms/errors";
import type { hsm } from "@kms/proto/internal";

type OperationInit = MessageInitShape<typeof hsm.OperationSchema>;
type Result = hsm.OperationResult["result"];

interface Pending {
  operation: OperationInit;
  deadline: Date;
  resolve: (r: Result) => void;
  reject: (err: unknown) => void;
}

export type SendBatch = (operations: OperationInit[], deadline: Date) => Promise<{ results: hsm.OperationResult[] }>;

export class WorkerBatcher {
  private queue: Pending[] = [];
  private scheduled = false;
  /** Whether no other operation can join this turn's batch (kms-api: one call in progress). */
  alone: () => boolean = () => false;
  /** Batches sent and operations carried, for the benchmark and metrics. */
  batches = 0;
  operations = 0;

  constructor(
    private readonly send: SendBatch,
    private readonly maxBatch = 512,
  ) {}

  run(operation: OperationInit, deadline: Date): Promise<Result> {
    return new Promise((resolve, reject) => {
      this.queue.push({ operation, deadline, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        if (this.alone()) queueMicrotask(() => this.flush());
        else setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, this.maxBatch);
      // The batch may take as long as its most patient member allows: nobody waits past their own deadline
      // for long, since the worker answers the whole batch at once.
      const deadline = batch.reduce((d, p) => (p.deadline < d ? p.deadline : d), batch[0]!.deadline);
      this.batches++;
      this.operations += batch.length;
      this.send(
        batch.map((p) => p.operation),
        deadline,
      ).then(
        (response) => batch.forEach((p, i) => settle(p, response.results[i]?.result)),
        (err: unknown) => {
          const failure = fromPeerError(err, "HSM worker");
          for (const p of batch) p.reject(failure);
        },
      );
    }
  }
}

function settle(p: Pending, result: Result | undefined): void {
  if (!result || result.case === undefined) {
    p.reject(new InternalError("worker batch answered without this operation's result"));
  } else if (result.case === "error") {
    p.reject(errorOfOutcome(result.value, "worker"));
  } else {
    p.resolve(result);
  }
}

// The kms-api end of the worker's BatchStream: every batch is one message on a long-lived stream,
// instead of a call of its own. A call costs a new HTTP/2 stream, headers, trailers and deadline timers
// on both sides: at low concurrency, where a batch holds one operation, that was most of the CPU the hop
// took (measured: ~1.9 ms per call for kms-api and worker together, ~0.8 ms as a message).
//
// Failure is what a call would give: the stream breaking (the worker died, its socket went away) fails
// the batches waiting on it at once, and the next batch opens a new stream; a batch not answered by its
// deadline (a hung worker) fails alone, with DEADLINE_EXCEEDED, which callers see as UNAVAILABLE.
import { create } from "@bufbuild/protobuf";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Metadata, status } from "@grpc/grpc-js";
import type { Client, ClientDuplexStream, ServiceError } from "@grpc/grpc-js";
import { openBidiStream } from "@kms/proto";
import { hsm } from "@kms/proto/internal";

type OperationInit = MessageInitShape<typeof hsm.OperationSchema>;

interface Waiting {
  resolve: (response: hsm.BatchStreamResponse) => void;
  reject: (err: ServiceError) => void;
  timer: NodeJS.Timeout;
}

interface OpenStream {
  call: ClientDuplexStream<hsm.BatchStreamRequest, hsm.BatchStreamResponse>;
  waiting: Map<number, Waiting>;
}

export class WorkerStream {
  private current: OpenStream | undefined;
  private nextId = 1;

  constructor(private readonly channel: Client) {}

  /** Sends one batch; resolves with the worker's answer, or rejects as a failed gRPC call would. */
  send(operations: OperationInit[], deadline: Date): Promise<hsm.BatchStreamResponse> {
    return new Promise((resolve, reject) => {
      const stream = this.open();
      const id = this.nextId;
      this.nextId = id >= 0xffff_ffff ? 1 : id + 1;
      const timer = setTimeout(() => {
        stream.waiting.delete(id);
        reject(peerError(status.DEADLINE_EXCEEDED, "the HSM worker did not answer the batch in time"));
      }, Math.max(0, deadline.getTime() - Date.now()));
      stream.waiting.set(id, { resolve, reject, timer });
      stream.call.write(create(hsm.BatchStreamRequestSchema, { id, operations }));
    });
  }

  /** Ends the stream (kms-api shutting down); batches still waiting fail as CANCELLED. */
  close(): void {
    this.current?.call.cancel();
  }

  private open(): OpenStream {
    if (this.current) return this.current;
    const call = openBidiStream(this.channel, hsm.HsmWorkerService.method.batchStream);
    const stream: OpenStream = { call, waiting: new Map() };
    this.current = stream;
    call.on("data", (response: hsm.BatchStreamResponse) => {
      const waiting = stream.waiting.get(response.id);
      if (waiting === undefined) return; // its deadline passed
      stream.waiting.delete(response.id);
      clearTimeout(waiting.timer);
      waiting.resolve(response);
    });
    // The worker ended the stream (it is stopping) or the connection failed: whatever still waits on
    // this stream has no answer coming. A failed call reports an error and then a status; an ended one
    // only its status.
    const broken = (err: ServiceError) => {
      if (this.current === stream) this.current = undefined;
      for (const waiting of stream.waiting.values()) {
        clearTimeout(waiting.timer);
        waiting.reject(err);
      }
      stream.waiting.clear();
    };
    call.on("error", (err: ServiceError) => broken(err));
    call.on("status", (s: { code: number; details: string; metadata: Metadata }) =>
      broken(peerError(s.code === status.OK ? status.UNAVAILABLE : s.code, s.code === status.OK ? "the HSM worker closed the batch stream" : s.details)),
    );
    call.on("end", () => call.end()); // our side too, so that the call is over
    return stream;
  }
}

/** An error shaped like the ones grpc-js calls fail with, for fromPeerError. */
function peerError(code: status, details: string): ServiceError {
  return Object.assign(new Error(`${code} ${status[code]}: ${details}`), { code, details, metadata: new Metadata() });
}

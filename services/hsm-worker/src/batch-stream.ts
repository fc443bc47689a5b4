// BatchStream: kms-api's batches as messages on one long-lived stream. Each message runs as one batch
// (batch.ts) and is answered with its id as soon as it is done, so a slow operation holds up only its own
// batch. On shutdown each stream is ended once its batches are answered: kms-api then opens a new one,
// which the stopping server refuses (UNAVAILABLE), instead of the server waiting forever for streams
// that never end by themselves.
import { create } from "@bufbuild/protobuf";
import type { ServerDuplexStream } from "@grpc/grpc-js";
import { hsm } from "@kms/proto/internal";
import type { Backend } from "./backend";
import { batch, failedBatch } from "./batch";
import { wipe } from "./bytes";
import { traceOperation } from "./telemetry";

type Call = ServerDuplexStream<hsm.BatchStreamRequest, hsm.BatchStreamResponse>;

interface OpenStream {
  call: Call;
  inFlight: number;
  /** kms-api closed its side, or the worker is stopping: end ours once the batches are answered. */
  closing: boolean;
  /** Secrets of answers written but not yet serialised: zeroed if the stream dies first. */
  unsent: Set<Buffer[]>;
}

export class BatchStreams {
  private readonly open = new Set<OpenStream>();
  private stopping = false;

  constructor(private readonly backend: Backend) {}

  /** The grpc-js handler of BatchStream. */
  readonly handler = (call: Call): void => {
    const stream: OpenStream = { call, inFlight: 0, closing: this.stopping, unsent: new Set() };
    this.open.add(stream);
    const gone = () => {
      this.open.delete(stream);
      for (const secrets of stream.unsent) wipe(...secrets);
      stream.unsent.clear();
    };
    call.on("data", (request: hsm.BatchStreamRequest) => this.answer(stream, request));
    call.on("end", () => this.close(stream));
    call.on("finish", gone);
    call.on("error", gone); // the connection dropped: nothing more can be sent
    call.on("cancelled", gone);
    if (stream.closing) this.endIfIdle(stream);
  };

  /** Ends every stream as soon as its batches are answered (graceful shutdown). */
  endAll(): void {
    this.stopping = true;
    for (const stream of this.open) this.close(stream);
  }

  private close(stream: OpenStream): void {
    stream.closing = true;
    this.endIfIdle(stream);
  }

  private answer(stream: OpenStream, request: hsm.BatchStreamRequest): void {
    stream.inFlight++;
    void traceOperation("BatchStream", { metadata: stream.call.metadata, request }, () => batch(this.backend, request.operations))
      .then(
        (outcome) => ({ results: outcome.results, secrets: outcome.wipeAfterSend }),
        (err: unknown) => ({ results: failedBatch(request.operations.length, err), secrets: [] as Buffer[] }),
      )
      .then(({ results, secrets }) => {
        stream.inFlight--;
        if (!this.open.has(stream) || stream.call.writableEnded) {
          wipe(...secrets);
        } else {
          stream.unsent.add(secrets);
          // The callback runs once the answer is serialised and handed to the connection.
          stream.call.write(create(hsm.BatchStreamResponseSchema, { id: request.id, results }), () => {
            wipe(...secrets);
            stream.unsent.delete(secrets);
          });
        }
        this.endIfIdle(stream);
      });
  }

  private endIfIdle(stream: OpenStream): void {
    if (stream.closing && stream.inFlight === 0 && !stream.call.writableEnded) stream.call.end();
  }
}

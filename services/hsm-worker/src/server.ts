// Wiring only: the gRPC service definition with each unary method bound to its registered operation
// (operations.ts), one wrapper that turns results and errors into callbacks, and the Unix socket.
import { Server } from "@grpc/grpc-js";
import type { sendUnaryData, ServerUnaryCall, UntypedServiceImplementation } from "@grpc/grpc-js";
import { ConfigError } from "@kms/config";
import { toStatus } from "@kms/errors";
import { grpcServiceDefinition } from "@kms/proto";
import { hsm, listenOnPrivateSocket } from "@kms/proto/internal";
import type { Backend } from "./backend";
import { wipe } from "./bytes";
import { BatchStreams } from "./batch-stream";
import type { CheckpointSigner } from "./checkpoint-signer";
import type { Reply } from "./handlers";
import { KeyGenerationQueue } from "./key-generation-queue";
import { logFailure, UNARY } from "./operations";
import type { UnaryOperation, Worker } from "./operations";
import type { TokenInventory } from "./pkcs11/token-objects";
import { traceOperation } from "./telemetry";

/** Buffers to zero once their response message has been serialised (by identity of the message). */
const wipeAfterSerialize = new WeakMap<object, Buffer[]>();

function unary(rpc: string, worker: Worker, operation: UnaryOperation) {
  return async (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>): Promise<void> => {
    let reply: Reply<unknown>;
    try {
      reply = await traceOperation(rpc, call, async () => operation(worker, call.request as never, call));
    } catch (err) {
      logFailure(rpc, err);
      callback(toStatus(err));
      return;
    }
    const secrets = reply.wipeAfterSend;
    if (secrets !== undefined) {
      wipeAfterSerialize.set(reply.response as object, secrets);
      // A cancelled call never serialises its response.
      call.once("cancelled", () => wipe(...secrets));
    }
    callback(null, reply.response);
  };
}

/** The defaults of KMS_KEYGEN_CONCURRENCY and KMS_KEYGEN_QUEUE (main.ts passes the configured queue). */
const DEFAULT_KEY_GENERATION = { concurrency: 1, queue: 8 };

export interface WorkerParts {
  /** Slow key generations wait here (main.ts passes the configured queue). */
  keyGeneration?: KeyGenerationQueue;
  /** The audit checkpoint key; without one the checkpoint RPCs are UNIMPLEMENTED. */
  checkpoints?: CheckpointSigner;
  /** The token's objects (ListTokenObjects); none on the software root. */
  tokens?: TokenInventory | undefined;
}

export function createHsmWorkerServer(backend: Backend, parts: WorkerParts = {}): Server {
  const definition = grpcServiceDefinition(hsm.HsmWorkerService);
  for (const method of Object.values(definition)) {
    const serialize = method.responseSerialize;
    method.responseSerialize = (message: unknown) => {
      const bytes = serialize(message);
      const secrets = wipeAfterSerialize.get(message as object);
      if (secrets !== undefined) wipe(...secrets);
      return bytes;
    };
  }
  const worker: Worker = { ...parts, backend, keyGeneration: parts.keyGeneration ?? new KeyGenerationQueue(DEFAULT_KEY_GENERATION) };
  const streams = new BatchStreams(backend);
  const implementation: UntypedServiceImplementation = { BatchStream: streams.handler };
  for (const [name, method] of Object.entries(definition)) {
    if (name === "BatchStream") continue;
    const operation: UnaryOperation | undefined = UNARY[method.originalName as keyof typeof UNARY];
    if (operation === undefined) throw new Error(`no operation registered for HsmWorkerService.${name}`);
    implementation[name] = unary(name, worker, operation);
  }
  const server = new Server();
  server.addService(definition, implementation);
  batchStreams.set(server, streams);
  return server;
}

const batchStreams = new WeakMap<Server, BatchStreams>();

/**
 * Stops taking calls and resolves once the calls in progress are answered. Batch streams do not end by
 * themselves: each is ended as soon as its batches are answered.
 */
export function shutdown(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.tryShutdown(() => resolve());
    batchStreams.get(server)?.endAll();
  });
}

/** Serves on unix://socketPath, a 0600 socket in this user's 0700 directory (see @kms/proto's unix-socket.ts). */
export function listen(server: Server, socketPath: string): Promise<void> {
  return listenOnPrivateSocket(server, socketPath, (problem) =>
    new ConfigError("KMS_WORKER_SOCKET", problem.startsWith("the socket's directory") ? `${problem}; point KMS_WORKER_SOCKET into a directory of its own` : problem),
  );
}

// Wiring only: the gRPC service definition, one wrapper that turns handler results and errors into
// callbacks, and the Unix socket the worker listens on.
import { Server, status } from "@grpc/grpc-js";
import type { sendUnaryData, ServerUnaryCall, UntypedServiceImplementation } from "@grpc/grpc-js";
import { ConfigError } from "@kms/config";
import { ErrorCode, InternalError, KmsError, toStatus } from "@kms/errors";
import { grpcServiceDefinition, hsm, listenOnPrivateSocket } from "@kms/proto";
import type { Backend } from "./backend";
import { wipe } from "./bytes";
import { BatchStreams } from "./batch-stream";
import { getAuditCheckpointKey, signAuditCheckpoint } from "./checkpoint-signer";
import type { CheckpointSigner } from "./checkpoint-signer";
import * as handlers from "./handlers";
import type { Reply } from "./handlers";
import { isSlowGeneration, KeyGenerationQueue } from "./key-generation-queue";
import { describeError, log } from "./log";
import { traceOperation } from "./telemetry";

type Handler = (backend: Backend, request: never, call: ServerUnaryCall<unknown, unknown>) => Reply<unknown> | Promise<Reply<unknown>>;

const HANDLERS: Record<string, Handler> = {
  GetStatus: handlers.getStatus,
  GenerateKeyMaterial: handlers.generateKeyMaterial,
  Encrypt: handlers.encrypt,
  Decrypt: handlers.decrypt,
  ReEncrypt: handlers.reEncrypt,
  GenerateDataKey: handlers.generateDataKey,
  GenerateRandom: handlers.generateRandom,
  ForgetKeys: handlers.forgetKeys,
  Sign: handlers.sign,
  Verify: handlers.verify,
  AsymmetricDecrypt: handlers.asymmetricDecrypt,
  GenerateMac: handlers.generateMac,
  VerifyMac: handlers.verifyMac,
  ImportKeyMaterial: handlers.importKeyMaterial,
};

/** Logs what the caller does not see: internal errors with their causes, and HSM outages. */
function logFailure(rpc: string, err: unknown): void {
  if (err instanceof KmsError) {
    if (err.status === status.UNAVAILABLE) log("warn", `${rpc}: ${err.message}`, { error: describeError(err.cause) });
    return;
  }
  log("error", `${rpc} failed`, { error: describeError(err instanceof InternalError ? err : new InternalError("unexpected error", { cause: err })) });
}

/** Buffers to zero once their response message has been serialised (by identity of the message). */
const wipeAfterSerialize = new WeakMap<object, Buffer[]>();

function unary(rpc: string, backend: Backend, handler: Handler) {
  return async (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>): Promise<void> => {
    let reply: Reply<unknown>;
    try {
      reply = await traceOperation(rpc, call, async () => handler(backend, call.request as never, call));
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

/** GenerateKeyMaterial: slow specs take their turn in `queue`; a caller that goes away leaves it. */
function queuedGeneration(queue: KeyGenerationQueue): Handler {
  return (backend, request: hsm.GenerateKeyMaterialRequest, call) => {
    if (!isSlowGeneration(request.keySpec)) return handlers.generateKeyMaterial(backend, request);
    const gone = new AbortController();
    call.once("cancelled", () => gone.abort());
    return queue.run(() => handlers.generateKeyMaterial(backend, request), gone.signal);
  };
}

/** The defaults of KMS_KEYGEN_CONCURRENCY and KMS_KEYGEN_QUEUE (main.ts passes the configured queue). */
const DEFAULT_KEY_GENERATION = { concurrency: 1, queue: 8 };

/** `checkpoints`: the audit checkpoint key; without one the checkpoint RPCs are UNIMPLEMENTED. */
export function createHsmWorkerServer(
  backend: Backend,
  keyGeneration = new KeyGenerationQueue(DEFAULT_KEY_GENERATION),
  checkpoints?: CheckpointSigner,
): Server {
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
  const streams = new BatchStreams(backend);
  const implementation: UntypedServiceImplementation = { BatchStream: streams.handler };
  const noCheckpointKey = () => {
    throw new KmsError(status.UNIMPLEMENTED, ErrorCode.Unimplemented, "this worker has no audit checkpoint key");
  };
  const table: Record<string, Handler> = {
    ...HANDLERS,
    SignAuditCheckpoint: (_b, req: hsm.SignAuditCheckpointRequest) => (checkpoints ? signAuditCheckpoint(checkpoints, req) : noCheckpointKey()),
    GetAuditCheckpointKey: () => (checkpoints ? getAuditCheckpointKey(checkpoints) : noCheckpointKey()),
  };
  for (const name of Object.keys(definition)) {
    if (name === "BatchStream") continue;
    const handler = name === "GenerateKeyMaterial" ? queuedGeneration(keyGeneration) : table[name];
    if (handler === undefined) throw new Error(`no handler for HsmWorkerService.${name}`);
    implementation[name] = unary(name, backend, handler);
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

// Wiring only: the gRPC service definition, one wrapper that turns handler results and errors into
// callbacks, and the Unix socket the worker listens on.
import { chmodSync, lstatSync, mkdirSync, unlinkSync } from "node:fs";
import path from "node:path";
import { Server, ServerCredentials, status } from "@grpc/grpc-js";
import type { sendUnaryData, ServerUnaryCall, UntypedServiceImplementation } from "@grpc/grpc-js";
import { ErrorCode, InternalError, KmsError, toStatus } from "@kms/errors";
import { grpcServiceDefinition, hsm } from "@kms/proto";
import type { Backend } from "./backend";
import { wipe } from "./bytes";
import { BatchStreams } from "./batch-stream";
import { getAuditCheckpointKey, signAuditCheckpoint } from "./checkpoint-signer";
import type { CheckpointSigner } from "./checkpoint-signer";
import * as handlers from "./handlers";
import type { Reply } from "./handlers";
import { describeError, log } from "./log";
import { traceOperation } from "./telemetry";

type Handler = (backend: Backend, request: never) => Reply<unknown> | Promise<Reply<unknown>>;

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
      reply = await traceOperation(rpc, call, async () => handler(backend, call.request as never));
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

/** `checkpoints`: the audit checkpoint key; without one the checkpoint RPCs are UNIMPLEMENTED. */
export function createHsmWorkerServer(backend: Backend, checkpoints?: CheckpointSigner): Server {
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
  const handlers: Record<string, Handler> = {
    ...HANDLERS,
    SignAuditCheckpoint: (_b, req: hsm.SignAuditCheckpointRequest) => (checkpoints ? signAuditCheckpoint(checkpoints, req) : noCheckpointKey()),
    GetAuditCheckpointKey: () => (checkpoints ? getAuditCheckpointKey(checkpoints) : noCheckpointKey()),
  };
  for (const name of Object.keys(definition)) {
    if (name === "BatchStream") continue;
    const handler = handlers[name];
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

/** Prepares the socket path: directory 0700, a stale socket from a previous run removed. */
function prepareSocket(socketPath: string): void {
  mkdirSync(path.dirname(socketPath), { recursive: true, mode: 0o700 });
  let stat;
  try {
    stat = lstatSync(socketPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
    throw err;
  }
  if (!stat.isSocket()) throw new Error(`${socketPath} exists and is not a socket; refusing to remove it`);
  unlinkSync(socketPath);
}

/** Starts serving on unix://socketPath; the socket is made 0600 (only this user can call the worker). */
export async function listen(server: Server, socketPath: string): Promise<void> {
  prepareSocket(socketPath);
  await new Promise<number>((resolve, reject) =>
    server.bindAsync(`unix://${socketPath}`, ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
  );
  chmodSync(socketPath, 0o600);
}

// Every worker operation, registered once. BATCHED: the hot operations, reached only as an Operation case
// of BatchStream (batch.ts) and answered by the OperationResult case of the same name. UNARY: one gRPC
// method each (server.ts), by the method's name in proto/kms/hsm/v1. The handlers live in handlers.ts.
import { create } from "@bufbuild/protobuf";
import type { ServerUnaryCall } from "@grpc/grpc-js";
import { status } from "@grpc/grpc-js";
import { ErrorCode, InternalError, KmsError } from "@kms/errors";
import type { kmsResources } from "@kms/proto";
import { hsm } from "@kms/proto/internal";
import type { Backend } from "./backend";
import { checkWrappedKeys } from "./check-wrapped-keys";
import { beginRootRotation, retireRoot, rewrapKeys } from "./rewrap-keys";
import { getAuditCheckpointKey, signAuditCheckpoint } from "./checkpoint-signer";
import type { CheckpointSigner } from "./checkpoint-signer";
import { generateDataKeyPair as dataKeyPair } from "./data-key-pair";
import * as handlers from "./handlers";
import type { Reply } from "./handlers";
import { isSlowGeneration } from "./key-generation-queue";
import { errorChain, processLogger } from "@kms/telemetry";
import type { KeyGenerationQueue } from "./key-generation-queue";
import type { TokenInventory } from "./pkcs11/token-objects";

const log = processLogger("hsm-worker");

/** What the operations reach: the backend, and the parts only some workers have. */
export interface Worker {
  backend: Backend;
  keyGeneration: KeyGenerationQueue;
  /** The audit checkpoint key; without one the checkpoint RPCs are UNIMPLEMENTED. */
  checkpoints?: CheckpointSigner;
  /** The token's objects; none on the software root. */
  tokens?: TokenInventory | undefined;
}

type OperationCase = NonNullable<hsm.Operation["op"]["case"]>;
type RequestOf<C extends OperationCase> = Extract<hsm.Operation["op"], { case: C }>["value"];
type ResponseOf<C extends OperationCase> = Extract<hsm.OperationResult["result"], { case: C }>["value"];

export type BatchedOperation<C extends OperationCase> = (backend: Backend, request: RequestOf<C>) => Promise<Reply<ResponseOf<C>>>;

export const BATCHED: { [C in OperationCase]: BatchedOperation<C> } = {
  encrypt: handlers.encrypt,
  decrypt: handlers.decrypt,
  generateDataKey: handlers.generateDataKey,
  sign: handlers.sign,
  reEncrypt: handlers.reEncrypt,
  generateMac: handlers.generateMac,
};

export type UnaryOperation = (worker: Worker, request: never, call: ServerUnaryCall<unknown, unknown>) => Reply<unknown> | Promise<Reply<unknown>>;

const noCheckpointKey = (): never => {
  throw new KmsError(ErrorCode.Unimplemented, "this worker has no audit checkpoint key");
};

/** Key generation: slow specs take their turn in the queue; a caller that goes away leaves it. */
function inTurn<T>(worker: Worker, keySpec: kmsResources.KeySpec, call: ServerUnaryCall<unknown, unknown>, generate: () => Promise<T>): Promise<T> {
  if (!isSlowGeneration(keySpec)) return generate();
  const gone = new AbortController();
  call.once("cancelled", () => gone.abort());
  return worker.keyGeneration.run(generate, gone.signal);
}

const generateKeyMaterial: UnaryOperation = (worker, request: hsm.GenerateKeyMaterialRequest, call) =>
  inTurn(worker, request.keySpec, call, () => handlers.generateKeyMaterial(worker.backend, request));

const generateDataKeyPair: UnaryOperation = (worker, request: hsm.GenerateDataKeyPairRequest, call) =>
  dataKeyPair(worker.backend, request, (generate) => inTurn(worker, request.keyPairSpec, call, generate));

const listTokenObjects: UnaryOperation = async (worker) => {
  if (worker.tokens === undefined) return { response: create(hsm.ListTokenObjectsResponseSchema, { hasToken: false }) };
  const listing = await worker.tokens.list();
  return { response: create(hsm.ListTokenObjectsResponseSchema, { hasToken: true, ...listing }) };
};

/** By the method's local name (getStatus for GetStatus); every unary method of the service has one. */
export const UNARY: Record<Exclude<keyof typeof hsm.HsmWorkerService.method, "batchStream">, UnaryOperation> = {
  getStatus: (worker) => handlers.getStatus(worker.backend),
  generateKeyMaterial,
  generateDataKeyPair,
  generateRandom: (worker, request: hsm.GenerateRandomRequest) => handlers.generateRandom(worker.backend, request),
  forgetKeys: (worker, request: hsm.ForgetKeysRequest) => handlers.forgetKeys(worker.backend, request),
  verify: (_worker, request: hsm.VerifyRequest) => handlers.verify(request),
  asymmetricDecrypt: (worker, request: hsm.AsymmetricDecryptRequest) => handlers.asymmetricDecrypt(worker.backend, request),
  verifyMac: (worker, request: hsm.VerifyMacRequest) => handlers.verifyMac(worker.backend, request),
  deriveSharedSecret: (worker, request: hsm.DeriveSharedSecretRequest) => handlers.deriveSharedSecret(worker.backend, request),
  importKeyMaterial: (worker, request: hsm.ImportKeyMaterialRequest) => handlers.importKeyMaterial(worker.backend, request),
  signAuditCheckpoint: (worker, request: hsm.SignAuditCheckpointRequest) =>
    worker.checkpoints ? signAuditCheckpoint(worker.checkpoints, request) : noCheckpointKey(),
  getAuditCheckpointKey: (worker) => (worker.checkpoints ? getAuditCheckpointKey(worker.checkpoints) : noCheckpointKey()),
  listTokenObjects,
  checkWrappedKeys: (worker, request: hsm.CheckWrappedKeysRequest) => checkWrappedKeys(worker.backend, request),
  beginRootRotation: (worker, request: hsm.BeginRootRotationRequest) => beginRootRotation(worker.backend, request),
  rewrapKeys: (worker, request: hsm.RewrapKeysRequest) => rewrapKeys(worker.backend, request),
  retireRoot: (worker, request: hsm.RetireRootRequest) => retireRoot(worker.backend, request),
};

/** Logs what the caller does not see: internal errors with their causes, and HSM outages. */
export function logFailure(what: string, err: unknown): void {
  if (err instanceof KmsError) {
    if (err.status === status.UNAVAILABLE) log.warn(`${what}: ${err.message}`, { error: errorChain(err.cause) });
    return;
  }
  log.error(`${what} failed`, { error: errorChain(err instanceof InternalError ? err : new InternalError("unexpected error", { cause: err })) });
}

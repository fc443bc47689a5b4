// The kms-api side of the hsm-worker hop: a typed client with a deadline on every call, and errors
// turned back into KmsErrors (UNAVAILABLE when the worker is down or slow — never a hang).
import { createPromiseClient, kmsResources } from "@kms/proto";
import { hsm } from "@kms/proto/internal";
import type { MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import { InternalError, fromPeerError } from "@kms/errors";
import { WorkerBatcher } from "./worker-batcher";
import { WorkerStream } from "./worker-stream";

type OperationResult = hsm.OperationResult["result"];
type OperationCase = Exclude<OperationResult["case"], undefined | "error">;
/** Each batched operation's response type, by its case name. */
type ResultOf = { [C in OperationCase]: Extract<OperationResult, { case: C }>["value"] };
/** Each batched operation's request, by its case name. */
type RequestOf = { [C in OperationCase]: Extract<MessageInitShape<typeof hsm.OperationSchema>["op"], { case: C }>["value"] };

/** The worker's token objects, for the reconciler (class, label, hex id; never values). */
export interface TokenListing {
  rootKeyLabel: string;
  checkpointKeyLabel: string;
  objects: { class: string; label: string; id: string }[];
}

/** Longest the worker may take to generate key material, unless the caller's own deadline is sooner. */
const KEY_GENERATION_DEADLINE_MS = 60_000;
const RSA_SPECS: ReadonlySet<kmsResources.KeySpec> = new Set([kmsResources.KeySpec.RSA_2048, kmsResources.KeySpec.RSA_3072, kmsResources.KeySpec.RSA_4096]);
const isRsa = (spec: kmsResources.KeySpec | undefined) => spec !== undefined && RSA_SPECS.has(spec);

export class WorkerClient {
  private readonly client;
  private status: MessageShape<typeof hsm.GetStatusResponseSchema> | undefined;
  /** The hot operations go through the batcher: one batch for all issued in one event-loop turn, sent on the stream. */
  readonly batcher: WorkerBatcher;
  private readonly stream: WorkerStream;

  constructor(
    socketPath: string,
    private readonly deadlineMs: number,
  ) {
    this.client = createPromiseClient(hsm.HsmWorkerService, `unix://${socketPath}`, undefined, {
      // Reconnect quickly after a worker restart instead of backing off for many seconds.
      "grpc.initial_reconnect_backoff_ms": 100,
      "grpc.max_reconnect_backoff_ms": 1000,
    });
    this.stream = new WorkerStream(this.client.channel);
    this.batcher = new WorkerBatcher((operations, deadline) => this.stream.send(operations, deadline));
  }

  private deadline(callDeadline: Date | undefined): Date {
    const own = new Date(Date.now() + this.deadlineMs);
    return callDeadline && callDeadline < own ? callDeadline : own;
  }

  /** A hot operation: each goes through the batcher, and takes its result of the same case. */
  private batched<K extends OperationCase>(kind: K) {
    return async (request: RequestOf[K], callDeadline?: Date): Promise<ResultOf[K]> => {
      const operation = { op: { case: kind, value: request } } as MessageInitShape<typeof hsm.OperationSchema>;
      const result: OperationResult = await this.batcher.run(operation, this.deadline(callDeadline));
      if (result.case !== kind) throw new InternalError(`worker answered ${String(result.case)} to ${kind}`);
      return result.value as unknown as ResultOf[K];
    };
  }

  readonly encrypt = this.batched("encrypt");
  readonly decrypt = this.batched("decrypt");
  readonly generateDataKey = this.batched("generateDataKey");
  readonly reEncrypt = this.batched("reEncrypt");
  readonly sign = this.batched("sign");
  readonly generateMac = this.batched("generateMac");

  private async call<R>(fn: (deadline: Date) => Promise<R>, callDeadline: Date | undefined, ownMs = this.deadlineMs): Promise<R> {
    const own = new Date(Date.now() + ownMs);
    const deadline = callDeadline && callDeadline < own ? callDeadline : own;
    try {
      return await fn(deadline);
    } catch (err) {
      throw fromPeerError(err, "HSM worker");
    }
  }

  /** The worker's backend, fetched once and then cached (its root ids change only by a root rotation: refreshStatus). */
  async getStatus(deadline?: Date) {
    this.status ??= await this.call((d) => this.client.getStatus({}, { deadline: d }), deadline);
    return this.status;
  }

  generateKeyMaterial(req: MessageInitShape<typeof hsm.GenerateKeyMaterialRequestSchema>, deadline?: Date) {
    // RSA-4096 generation (a prime search, in the HSM) takes seconds: more than an ordinary worker call.
    // Other specs keep the ordinary deadline, so a hung worker fails them fast (UNAVAILABLE).
    const ownMs = isRsa(req.keySpec) ? Math.max(this.deadlineMs, KEY_GENERATION_DEADLINE_MS) : this.deadlineMs;
    return this.call((d) => this.client.generateKeyMaterial(req, { deadline: d }), deadline, ownMs);
  }

  generateDataKeyPair(req: MessageInitShape<typeof hsm.GenerateDataKeyPairRequestSchema>, deadline?: Date) {
    // RSA pairs are generated in the worker's key generation queue: the same allowance as RSA keys.
    const ownMs = isRsa(req.keyPairSpec) ? Math.max(this.deadlineMs, KEY_GENERATION_DEADLINE_MS) : this.deadlineMs;
    return this.call((d) => this.client.generateDataKeyPair(req, { deadline: d }), deadline, ownMs);
  }





  forgetKeys(req: MessageInitShape<typeof hsm.ForgetKeysRequestSchema>, deadline?: Date) {
    return this.call((d) => this.client.forgetKeys(req, { deadline: d }), deadline);
  }

  generateRandom(req: MessageInitShape<typeof hsm.GenerateRandomRequestSchema>, deadline?: Date) {
    return this.call((d) => this.client.generateRandom(req, { deadline: d }), deadline);
  }


  verify(req: MessageInitShape<typeof hsm.VerifyRequestSchema>, deadline?: Date) {
    return this.call((d) => this.client.verify(req, { deadline: d }), deadline);
  }

  asymmetricDecrypt(req: MessageInitShape<typeof hsm.AsymmetricDecryptRequestSchema>, deadline?: Date) {
    return this.call((d) => this.client.asymmetricDecrypt(req, { deadline: d }), deadline);
  }

  deriveSharedSecret(req: MessageInitShape<typeof hsm.DeriveSharedSecretRequestSchema>, deadline?: Date) {
    return this.call((d) => this.client.deriveSharedSecret(req, { deadline: d }), deadline);
  }


  verifyMac(req: MessageInitShape<typeof hsm.VerifyMacRequestSchema>, deadline?: Date) {
    return this.call((d) => this.client.verifyMac(req, { deadline: d }), deadline);
  }

  importKeyMaterial(req: MessageInitShape<typeof hsm.ImportKeyMaterialRequestSchema>, deadline?: Date) {
    return this.call((d) => this.client.importKeyMaterial(req, { deadline: d }), deadline);
  }

  signAuditCheckpoint(req: MessageInitShape<typeof hsm.SignAuditCheckpointRequestSchema>, deadline?: Date) {
    return this.call((d) => this.client.signAuditCheckpoint(req, { deadline: d }), deadline);
  }

  getAuditCheckpointKey(deadline?: Date) {
    return this.call((d) => this.client.getAuditCheckpointKey({}, { deadline: d }), deadline);
  }

  /** The worker's token objects; null when it has no PKCS#11 token (the software root). */
  async listTokenObjects(deadline?: Date): Promise<TokenListing | null> {
    const r = await this.call((d) => this.client.listTokenObjects({}, { deadline: d }), deadline);
    if (!r.hasToken) return null;
    return { rootKeyLabel: r.rootKeyLabel, checkpointKeyLabel: r.checkpointKeyLabel, objects: r.objects.map((o) => ({ class: o.class, label: o.label, id: o.id })) };
  }

  /** Whether each stored key version unwraps under a root the worker holds (verify-restore); nothing is used. */
  checkWrappedKeys(req: MessageInitShape<typeof hsm.CheckWrappedKeysRequestSchema>, deadline?: Date) {
    return this.call((d) => this.client.checkWrappedKeys(req, { deadline: d }), deadline);
  }

  /** The worker's status read afresh: the worker reads the token's root sets again first (root rotation). */
  async refreshStatus(deadline?: Date) {
    this.status = await this.call((d) => this.client.getStatus({}, { deadline: d }), deadline);
    return this.status;
  }

  /** Root rotation (root-rotation.ts): the switch to a new root set, idempotent. */
  beginRootRotation(req: MessageInitShape<typeof hsm.BeginRootRotationRequestSchema>, deadline?: Date) {
    return this.call((d) => this.client.beginRootRotation(req, { deadline: d }), deadline, Math.max(this.deadlineMs, KEY_GENERATION_DEADLINE_MS));
  }

  /** Re-wraps up to 100 stored versions under the current root set; material never comes back in the clear. */
  rewrapKeys(req: MessageInitShape<typeof hsm.RewrapKeysRequestSchema>, deadline?: Date) {
    return this.call((d) => this.client.rewrapKeys(req, { deadline: d }), deadline, Math.max(this.deadlineMs, KEY_GENERATION_DEADLINE_MS));
  }

  retireRoot(req: MessageInitShape<typeof hsm.RetireRootRequestSchema>, deadline?: Date) {
    return this.call((d) => this.client.retireRoot(req, { deadline: d }), deadline);
  }

  close(): void {
    this.stream.close();
    this.client.close();
  }
}

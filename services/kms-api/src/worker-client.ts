// The kms-api side of the hsm-worker hop: a typed client with a deadline on every call, and errors
// turned back into KmsErrors (UNAVAILABLE when the worker is down or slow — never a hang).
import { createPromiseClient, hsm } from "@kms/proto";
import type { MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import { fromPeerError } from "@kms/errors";

/** Longest the worker may take to generate key material, unless the caller's own deadline is sooner. */
const KEY_GENERATION_DEADLINE_MS = 60_000;

export class WorkerClient {
  private readonly client;
  private status: MessageShape<typeof hsm.GetStatusResponseSchema> | undefined;

  constructor(
    socketPath: string,
    private readonly deadlineMs: number,
  ) {
    this.client = createPromiseClient(hsm.HsmWorkerService, `unix://${socketPath}`, undefined, {
      // Reconnect quickly after a worker restart instead of backing off for many seconds.
      "grpc.initial_reconnect_backoff_ms": 100,
      "grpc.max_reconnect_backoff_ms": 1000,
    });
  }

  private async call<R>(fn: (deadline: Date) => Promise<R>, callDeadline: Date | undefined, ownMs = this.deadlineMs): Promise<R> {
    const own = new Date(Date.now() + ownMs);
    const deadline = callDeadline && callDeadline < own ? callDeadline : own;
    try {
      return await fn(deadline);
    } catch (err) {
      throw fromPeerError(err, "HSM worker");
    }
  }

  /** The worker's backend, fetched once and then cached (it cannot change while the worker lives). */
  async getStatus(deadline?: Date) {
    this.status ??= await this.call((d) => this.client.getStatus({}, { deadline: d }), deadline);
    return this.status;
  }

  generateKeyMaterial(req: MessageInitShape<typeof hsm.GenerateKeyMaterialRequestSchema>, deadline?: Date) {
    // RSA-4096 generation (a prime search, in the HSM) takes seconds: more than an ordinary worker call.
    const ownMs = Math.max(this.deadlineMs, KEY_GENERATION_DEADLINE_MS);
    return this.call((d) => this.client.generateKeyMaterial(req, { deadline: d }), deadline, ownMs);
  }

  encrypt(req: MessageInitShape<typeof hsm.EncryptRequestSchema>, deadline?: Date) {
    return this.call((d) => this.client.encrypt(req, { deadline: d }), deadline);
  }

  decrypt(req: MessageInitShape<typeof hsm.DecryptRequestSchema>, deadline?: Date) {
    return this.call((d) => this.client.decrypt(req, { deadline: d }), deadline);
  }

  generateDataKey(req: MessageInitShape<typeof hsm.GenerateDataKeyRequestSchema>, deadline?: Date) {
    return this.call((d) => this.client.generateDataKey(req, { deadline: d }), deadline);
  }

  reEncrypt(req: MessageInitShape<typeof hsm.ReEncryptRequestSchema>, deadline?: Date) {
    return this.call((d) => this.client.reEncrypt(req, { deadline: d }), deadline);
  }

  forgetKeys(req: MessageInitShape<typeof hsm.ForgetKeysRequestSchema>, deadline?: Date) {
    return this.call((d) => this.client.forgetKeys(req, { deadline: d }), deadline);
  }

  generateRandom(req: MessageInitShape<typeof hsm.GenerateRandomRequestSchema>, deadline?: Date) {
    return this.call((d) => this.client.generateRandom(req, { deadline: d }), deadline);
  }

  sign(req: MessageInitShape<typeof hsm.SignRequestSchema>, deadline?: Date) {
    return this.call((d) => this.client.sign(req, { deadline: d }), deadline);
  }

  verify(req: MessageInitShape<typeof hsm.VerifyRequestSchema>, deadline?: Date) {
    return this.call((d) => this.client.verify(req, { deadline: d }), deadline);
  }

  asymmetricDecrypt(req: MessageInitShape<typeof hsm.AsymmetricDecryptRequestSchema>, deadline?: Date) {
    return this.call((d) => this.client.asymmetricDecrypt(req, { deadline: d }), deadline);
  }

  generateMac(req: MessageInitShape<typeof hsm.GenerateMacRequestSchema>, deadline?: Date) {
    return this.call((d) => this.client.generateMac(req, { deadline: d }), deadline);
  }

  verifyMac(req: MessageInitShape<typeof hsm.VerifyMacRequestSchema>, deadline?: Date) {
    return this.call((d) => this.client.verifyMac(req, { deadline: d }), deadline);
  }

  close(): void {
    this.client.close();
  }
}

// Signed checkpoints of the audit chain: every KMS_AUDIT_CHECKPOINT_INTERVAL and at shutdown, this
// replica has its worker sign the chain's head (sequence, hash, the worker's time), stores the checkpoint
// (audit_checkpoints, for ListAuditCheckpoints) and logs it as an `audit chain head` line. Ship those
// lines to storage the database administrators cannot rewrite: VerifyAuditLog and kms-audit-verify,
// given one, fail for a chain that was cut or wiped after it was made.
import { createPublicKey } from "node:crypto";
import { checkpointKeyId, checkpointToJson, verifyCheckpoint } from "@kms/audit-chain";
import type { SignedCheckpoint } from "@kms/audit-chain";
import { CheckpointStore } from "@kms/db";
import type { AuditReader, AuditWriter, Sql } from "@kms/db";
import type { Logger } from "@kms/telemetry";
import { describeError } from "@kms/telemetry";
import type { WorkerClient } from "./worker-client";

/** What checkpoints need: the chain's writer and reader, the worker that signs, the log. */
export interface CheckpointDeps {
  audit: AuditWriter;
  auditReader: AuditReader;
  worker: WorkerClient;
  log: Logger;
}

export interface CheckpointKey {
  /** SubjectPublicKeyInfo, DER. */
  spki: Buffer;
  pem: string;
  keyId: string;
}

export class AuditCheckpointer {
  readonly store: CheckpointStore;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> = Promise.resolve();
  private key: CheckpointKey | undefined;
  /** The highest sequence checkpointed (by this replica, or stored when it started): an idle chain gets none. */
  private lastSequence: number | undefined;

  constructor(
    sql: Sql,
    private readonly s: CheckpointDeps,
  ) {
    this.store = new CheckpointStore(sql);
  }

  start(intervalMs: number): void {
    this.timer = setInterval(() => void this.checkpoint(), intervalMs);
    this.timer.unref();
  }

  /** Stops the timer and makes a last checkpoint (shutdown). */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.checkpoint();
  }

  /** The worker's checkpoint key (asked once). */
  async publicKey(deadline?: Date): Promise<CheckpointKey> {
    if (this.key) return this.key;
    const res = await this.s.worker.getAuditCheckpointKey(deadline);
    const spki = Buffer.from(res.publicKey);
    const pem = createPublicKey({ key: spki, format: "der", type: "spki" }).export({ type: "spki", format: "pem" }).toString();
    this.key = { spki, pem, keyId: checkpointKeyId(spki) };
    return this.key;
  }

  /** True when `c` is signed by this deployment's checkpoint key. */
  async verify(c: SignedCheckpoint, deadline?: Date): Promise<boolean> {
    return verifyCheckpoint(c, (await this.publicKey(deadline)).spki);
  }

  /** Signs, stores and logs the current head (one at a time); a failure is logged, never thrown. */
  checkpoint(): Promise<void> {
    this.running = this.running.then(() => this.checkpointNow());
    return this.running;
  }

  private async checkpointNow(): Promise<void> {
    try {
      await this.s.audit.drain(); // rows appended so far are in the head
      // Never sign a head that moved back: that would bless the cut (the writer refuses it too).
      if (this.s.audit.rewound) return;
      this.lastSequence ??= (await this.store.list(1))[0]?.sequence ?? 0;
      const head = await this.s.auditReader.head();
      const sequence = head?.sequence ?? 0;
      if (sequence < this.lastSequence) {
        this.s.log.error("audit chain head is behind a signed checkpoint: rows were cut; no checkpoint made", {
          headSequence: sequence,
          checkpointSequence: this.lastSequence,
        });
        return;
      }
      if (!head || sequence === 0 || sequence === this.lastSequence) return;
      const signed = await this.s.worker.signAuditCheckpoint({ sequence: BigInt(head.sequence), headHash: head.hash });
      const checkpoint: SignedCheckpoint = {
        sequence: head.sequence,
        headHash: head.hash,
        time: new Date(Number(signed.timeUnixMillis)),
        keyId: signed.keyId,
        signature: Buffer.from(signed.signature),
      };
      this.s.log.info("audit chain head", { checkpoint: checkpointToJson(checkpoint) });
      await this.store.insert(checkpoint);
      this.lastSequence = head.sequence;
    } catch (err) {
      this.s.log.error("audit checkpoint failed", describeError(err));
    }
  }
}

// Audit rows by group commit: requests that arrive while a batch is being written wait for the next
// batch, so one transaction (and one fsync) carries many rows. append() resolves only once its row is
// committed; if the write fails it rejects, and the request must fail (no audit, no answer).
//
// The rows form one hash chain across all replicas: a batch takes a transaction-scoped advisory lock,
// reads the head, chains its rows after it and moves the head. Replicas therefore serialise per batch,
// not per request — the cost of one chain is one lock hand-over per group commit.
import { chainRows } from "@kms/audit-chain";
import type { AuditRow, ChainedRow } from "@kms/audit-chain";
import type { Sql } from "./connect";

export type AuditEvent = Omit<AuditRow, "sequence">;

interface Pending {
  event: AuditEvent;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class AuditWriter {
  private queue: Pending[] = [];
  private flushing: Promise<void> | undefined;
  /** Observers of each committed batch (e.g. metrics). */
  onBatch: (size: number, ms: number) => void = () => {};
  /** Called when rows were found after the recorded head (added by hand): the first such sequence. */
  onTampering: (firstForgedSequence: number) => void = () => {};

  constructor(
    private readonly sql: Sql,
    private readonly maxBatch = 1000,
  ) {}

  append(event: AuditEvent): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ event, resolve, reject });
      this.flushing ??= this.flush();
    });
  }

  /** Waits until every row appended so far is written (or failed). */
  async drain(): Promise<void> {
    while (this.flushing) await this.flushing;
  }

  private async flush(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, this.maxBatch);
        const started = Date.now();
        try {
          await this.writeBatch(batch.map((p) => p.event));
          for (const p of batch) p.resolve();
          this.onBatch(batch.length, Date.now() - started);
        } catch (err) {
          for (const p of batch) p.reject(err);
        }
      }
    } finally {
      this.flushing = undefined;
    }
  }

  private async writeBatch(events: AuditEvent[]): Promise<void> {
    await this.sql.begin(async (tx) => {
      await tx`SELECT pg_advisory_xact_lock(hashtext('kms.audit_chain'))`;
      // One read for both: the recorded head and the highest row (they differ only after tampering).
      const [found] = await tx<{ headSequence: string | null; headHash: Buffer | null; maxSequence: string | null }[]>`
        SELECT (SELECT sequence FROM audit_head WHERE id = 1)::text AS head_sequence,
               (SELECT hash FROM audit_head WHERE id = 1) AS head_hash,
               (SELECT max(sequence) FROM audit_events)::text AS max_sequence`;
      const headSequence = Number(found?.headSequence ?? 0);
      // Rows beyond the recorded head can only have been put there by hand: write after them (so the
      // service keeps answering) but link to the head, so verification flags the first forged row.
      const sequence = Math.max(headSequence, Number(found?.maxSequence ?? 0));
      if (found?.headHash && sequence > headSequence) this.onTampering(headSequence + 1);
      const rows = chainRows({ sequence, hash: found?.headHash ?? Buffer.alloc(32) }, events);
      const last = rows[rows.length - 1]!;
      // The rows and the new head in one statement.
      await tx`
        WITH written AS (INSERT INTO audit_events ${tx(rows.map(toColumns))} RETURNING 1)
        INSERT INTO audit_head (id, sequence, hash) VALUES (1, ${last.sequence}, ${last.hash})
        ON CONFLICT (id) DO UPDATE SET sequence = EXCLUDED.sequence, hash = EXCLUDED.hash`;
    });
  }
}

function toColumns(r: ChainedRow) {
  return {
    sequence: r.sequence,
    time: r.time,
    request_id: r.requestId,
    principal: r.principal,
    operation: r.operation,
    key_id: r.keyId,
    key_version_id: r.keyVersionId,
    result_code: r.resultCode,
    error_code: r.errorCode,
    encryption_context: r.encryptionContext as never,
    prev_hash: r.prevHash,
    hash: r.hash,
  };
}

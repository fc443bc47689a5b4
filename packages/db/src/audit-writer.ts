// Audit rows by group commit: requests that arrive while a batch is being written wait for the next
// batch, so one INSERT (and one fsync) carries many rows. append() resolves only once its row is
// committed; if the write fails it rejects, and the request must fail (no audit, no answer).
import type { Sql } from "./connect";

export interface AuditEvent {
  time: Date;
  requestId: string;
  principal: string;
  operation: string;
  keyId: string;
  keyVersionId: string;
  /** gRPC status code name, e.g. "OK". */
  resultCode: string;
  /** kms-error-code; empty on success. */
  errorCode: string;
}

interface Pending {
  event: AuditEvent;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class AuditWriter {
  private queue: Pending[] = [];
  private flushing: Promise<void> | undefined;

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
        try {
          await this.sql`INSERT INTO audit_events ${this.sql(batch.map((p) => toRow(p.event)))}`;
          for (const p of batch) p.resolve();
        } catch (err) {
          for (const p of batch) p.reject(err);
        }
      }
    } finally {
      this.flushing = undefined;
    }
  }
}

function toRow(e: AuditEvent) {
  return {
    time: e.time,
    request_id: e.requestId,
    principal: e.principal,
    operation: e.operation,
    key_id: e.keyId,
    key_version_id: e.keyVersionId,
    result_code: e.resultCode,
    error_code: e.errorCode,
  };
}

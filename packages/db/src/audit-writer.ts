// Audit rows by group commit: requests that arrive while a batch is being written wait for the next
// batch, so one transaction (and one fsync) carries many rows. append() resolves only once its row is
// committed; if the write fails it rejects, and the request must fail (no audit, no answer).
//
// The rows form one hash chain across all replicas. The writer remembers the head it last wrote, and a
// batch is one statement (one round trip, no explicit transaction): move audit_head from that head to
// the batch's last row and insert the rows only if the head moved. Row locking makes that a
// compare-and-swap, so when another replica wrote meanwhile nothing is written and the batch takes the
// slow path: a transaction under an advisory lock that reads the head, chains after it and moves it.
// One replica alone never takes the slow path after its first batch. While the locked path sees that
// another replica wrote since this one's last batch, the next batch goes straight to it, not through a
// compare-and-swap bound to fail; several replicas hand the head over per batch, not per request.
//
// A key change writes its row inside its own transaction instead (appendInTransaction), under the same
// lock, so that the change and its row commit together or not at all.
//
// The head never moves back. The writer remembers the newest head it wrote or read; a head found behind
// it means rows were cut and audit_head rewound by hand (or an old backup restored under a running
// service): the writer then refuses every write (AuditRewoundError), so this replica answers nothing
// until someone looks, and says so through onRewind.
import { chainRows } from "@kms/audit-chain";
import type { AuditRow, ChainedRow } from "@kms/audit-chain";
import type { Sql, TransactionSql } from "./connect";

export type AuditEvent = Omit<AuditRow, "sequence">;

/** The chain's head was found behind one this writer wrote or read before. */
export class AuditRewoundError extends Error {
  override readonly name = "AuditRewoundError";
  constructor(
    readonly found: { sequence: number; hash: Buffer },
    readonly known: { sequence: number; hash: Buffer },
  ) {
    super(
      `audit chain head moved back: it is at sequence ${found.sequence} (${found.hash.toString("hex")}), ` +
        `this replica had seen sequence ${known.sequence} (${known.hash.toString("hex")})`,
    );
  }
}

interface Pending {
  event: AuditEvent;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class AuditWriter {
  private queue: Pending[] = [];
  /** The head this writer last wrote (or read); undefined until the first batch or after a failure. */
  private head: { sequence: number; hash: Buffer } | undefined;
  /** Another replica wrote between this one's last two batches: the fast path would likely fail. */
  private othersWriting = false;
  private flushing: Promise<void> | undefined;
  /** Batches written by the one-statement fast path and by the locked slow path. */
  readonly batches = { fast: 0, locked: 0 };
  /** Observers of each committed batch (e.g. metrics). */
  onBatch: (size: number, ms: number) => void = () => {};
  /** Called when rows were found after the recorded head (added by hand): the first such sequence. */
  onTampering: (firstForgedSequence: number) => void = () => {};
  /** Whether no other row can join this one's batch (kms-api: one call in progress); then it starts at once. */
  alone: () => boolean = () => false;
  /** Runs before every write; throwing fails it as a database error would (test-only fault injection). */
  beforeWrite: () => void = () => {};
  /** Called once, when the head is found behind `known`; every write fails from then on. */
  onRewind: (err: AuditRewoundError) => void = () => {};
  /** The newest head this writer wrote or read (committed facts only): the head may never go behind it. */
  private known: { sequence: number; hash: Buffer } | undefined;
  private rewoundError: AuditRewoundError | undefined;

  /** Set once the head was found behind one this writer knew: it writes nothing more. */
  get rewound(): AuditRewoundError | undefined {
    return this.rewoundError;
  }

  constructor(
    private readonly sql: Sql,
    private readonly maxBatch = 1000,
  ) {}

  append(event: AuditEvent): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ event: storable(event), resolve, reject });
      // Start on the next turn, so that the rows appended in this one (the calls one worker answer
      // released) go in one batch. Started at once, the first would go alone and the rest would wait
      // for its commit: under load that halved the rows per commit and cost ~20 % of the throughput.
      // A lone row (alone()) has nothing to wait for: it starts once the current microtasks are done.
      this.flushing ??= (this.alone() ? Promise.resolve() : new Promise<void>((r) => setImmediate(r))).then(() => this.flush());
    });
  }

  /**
   * Writes one row inside the caller's transaction (a key change), so that the change and its row
   * commit together or not at all. It takes the chain lock, which holds off every replica's audit
   * writes until the commit: call it as the transaction's last statement.
   */
  async appendInTransaction(tx: TransactionSql, event: AuditEvent): Promise<void> {
    this.beforeWrite();
    if (this.rewoundError) throw this.rewoundError;
    await this.chainUnderLock(tx, [storable(event)]);
    // This writer's remembered head is now behind: its next fast path fails and re-reads the head.
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
    this.beforeWrite();
    if (this.rewoundError) throw this.rewoundError;
    const head = this.head;
    this.head = undefined; // unknown until this batch's outcome is
    if (head && !this.othersWriting && (await this.writeAfterHead(head, events))) return;
    await this.writeUnderLock(events, head);
  }

  /** The fast path: false when the head moved (another replica wrote) or rows sit beyond it (by hand). */
  private async writeAfterHead(head: { sequence: number; hash: Buffer }, events: AuditEvent[]): Promise<boolean> {
    const rows = chainRows(head, events);
    const last = rows[rows.length - 1]!;
    // One JSON parameter (JSON.stringify is native; per-element array escaping in JavaScript cost more
    // than the rest of the batch) and one prepared statement for every batch size.
    const json = this.sql.json(rows.map(toJson) as never); // postgres.js sends it through JSON.stringify
    try {
      const [result] = await this.sql<{ written: number }[]>`
        WITH moved AS (
          UPDATE audit_head SET sequence = ${last.sequence}, hash = ${last.hash}
          WHERE id = 1 AND sequence = ${head.sequence} AND hash = ${head.hash}
          RETURNING 1
        ), written AS (
          INSERT INTO audit_events (sequence, time, request_id, principal, operation, key_id, key_version_id,
                                    result_code, error_code, encryption_context, grant_id, dry_run, prev_hash, hash)
          SELECT r.s, r.t, r.q, r.p, r.o, r.k, r.v, r.r, r.e, r.c, r.g, r.d, decode(r.ph, 'hex'), decode(r.h, 'hex')
          FROM json_to_recordset(${json}::json)
               AS r(s bigint, t timestamptz, q text, p text, o text, k text, v text, r text, e text, c jsonb, g text, d boolean, ph text, h text)
          WHERE EXISTS (SELECT 1 FROM moved)
          RETURNING 1
        )
        SELECT count(*)::int AS written FROM written`;
      if (result?.written !== rows.length) return false;
    } catch (err) {
      // A row already at the next sequence was put there by hand: the slow path writes after it.
      if ((err as { code?: unknown }).code === UNIQUE_VIOLATION) return false;
      throw err; // outcome unknown (e.g. the connection dropped): the callers fail, the next batch re-reads
    }
    this.head = { sequence: last.sequence, hash: last.hash };
    this.remember(this.head);
    this.batches.fast++;
    return true;
  }

  /** `lastWritten`: the head this writer left after its previous batch, if known. */
  private async writeUnderLock(events: AuditEvent[], lastWritten: { sequence: number } | undefined): Promise<void> {
    const { last, headSequence } = await this.sql.begin((tx) => this.chainUnderLock(tx, events));
    this.othersWriting = lastWritten !== undefined && headSequence !== lastWritten.sequence;
    this.head = { sequence: last.sequence, hash: last.hash };
    this.remember(this.head);
    this.batches.locked++;
  }

  /** After a commit (or a read of committed state): `head` is the newest known unless one is newer. */
  private remember(head: { sequence: number; hash: Buffer }): void {
    if (!this.known || head.sequence > this.known.sequence) this.known = head;
  }

  /** Fails closed when `found` is behind the newest head known (or at its sequence with another hash). */
  private checkNotRewound(found: { sequence: number; hash: Buffer }): void {
    const known = this.known;
    if (!known) return;
    if (found.sequence > known.sequence || (found.sequence === known.sequence && found.hash.equals(known.hash))) return;
    this.rewoundError = new AuditRewoundError(found, known);
    this.onRewind(this.rewoundError);
    throw this.rewoundError;
  }

  /** Inside `tx`: takes the chain lock, reads the head, chains `events` after it and moves it. */
  private async chainUnderLock(tx: TransactionSql, events: AuditEvent[]): Promise<{ last: ChainedRow; headSequence: number }> {
    await tx`SELECT pg_advisory_xact_lock(hashtext('kms.audit_chain'))`;
    // The head row's lock holds off the other replicas' fast path until this commits; the next
    // statement's snapshot then sees everything they wrote before.
    await tx`SELECT 1 FROM audit_head WHERE id = 1 FOR UPDATE`;
    // One read for both: the recorded head and the highest row (they differ only after tampering).
    const [found] = await tx<{ headSequence: string | null; headHash: Buffer | null; maxSequence: string | null }[]>`
      SELECT (SELECT sequence FROM audit_head WHERE id = 1)::text AS head_sequence,
             (SELECT hash FROM audit_head WHERE id = 1) AS head_hash,
             (SELECT max(sequence) FROM audit_events)::text AS max_sequence`;
    const headSequence = Number(found?.headSequence ?? 0);
    const headHash = found?.headHash ?? Buffer.alloc(32);
    this.checkNotRewound({ sequence: headSequence, hash: headHash });
    this.remember({ sequence: headSequence, hash: headHash }); // committed by whoever wrote it
    // Rows beyond the recorded head can only have been put there by hand: write after them (so the
    // service keeps answering) but link to the head, so verification flags the first forged row.
    const sequence = Math.max(headSequence, Number(found?.maxSequence ?? 0));
    if (found?.headHash && sequence > headSequence) this.onTampering(headSequence + 1);
    const rows = chainRows({ sequence, hash: headHash }, events);
    const last = rows[rows.length - 1]!;
    // The rows and the new head in one statement.
    await tx`
      WITH written AS (INSERT INTO audit_events ${tx(rows.map(toColumns))} RETURNING 1)
      INSERT INTO audit_head (id, sequence, hash) VALUES (1, ${last.sequence}, ${last.hash})
      ON CONFLICT (id) DO UPDATE SET sequence = EXCLUDED.sequence, hash = EXCLUDED.hash`;
    return { last, headSequence };
  }
}

const UNIQUE_VIOLATION = "23505";

/**
 * Postgres text and jsonb cannot hold U+0000 or a lone surrogate (which JSON carries as a \uD8xx escape),
 * and one such row would fail its whole batch: everyone else's calls with it. The API refuses both where
 * they reach the audit trail; this is the backstop, replacing them by U+FFFD. It runs before chaining, so
 * the hash covers exactly what is stored.
 */
function storable(event: AuditEvent): AuditEvent {
  const unstorable = (s: string) => s.includes("\u0000") || !s.isWellFormed();
  const strings = [event.requestId, event.principal, event.operation, event.keyId, event.keyVersionId, event.resultCode, event.errorCode, event.grantId ?? ""];
  const context = Object.entries(event.encryptionContext);
  if (!strings.some(unstorable) && !context.some(([k, v]) => unstorable(k) || unstorable(v))) return event;
  const clean = (s: string) => s.toWellFormed().replaceAll("\u0000", "\ufffd");
  return {
    ...event,
    requestId: clean(event.requestId),
    principal: clean(event.principal),
    operation: clean(event.operation),
    keyId: clean(event.keyId),
    keyVersionId: clean(event.keyVersionId),
    resultCode: clean(event.resultCode),
    errorCode: clean(event.errorCode),
    ...(event.grantId ? { grantId: clean(event.grantId) } : {}),
    encryptionContext: Object.fromEntries(context.map(([k, v]) => [clean(k), clean(v)])),
  };
}

/** One row for json_to_recordset: short names, hashes as hex. */
function toJson(r: ChainedRow) {
  return {
    s: r.sequence,
    t: r.time.toISOString(),
    q: r.requestId,
    p: r.principal,
    o: r.operation,
    k: r.keyId,
    v: r.keyVersionId,
    r: r.resultCode,
    e: r.errorCode,
    c: r.encryptionContext,
    g: r.grantId ?? "",
    d: r.dryRun ?? false,
    ph: r.prevHash.toString("hex"),
    h: r.hash.toString("hex"),
  };
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
    grant_id: r.grantId ?? "",
    dry_run: r.dryRun ?? false,
    prev_hash: r.prevHash,
    hash: r.hash,
  };
}

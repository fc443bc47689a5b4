// Reading the audit trail back: filtered listing and chain verification in pages.
import { ChainVerifier, GENESIS_HASH } from "@kms/audit-chain";
import type { ChainedRow, VerifyResult } from "@kms/audit-chain";
import type { Sql } from "./connect";

export interface AuditFilter {
  keyId?: string;
  principal?: string;
  operation?: string;
  startTime?: Date;
  endTime?: Date;
}

type Row = Omit<ChainedRow, "sequence"> & { sequence: string };
const toRow = (r: Row): ChainedRow => ({ ...r, sequence: Number(r.sequence) });

export class AuditReader {
  constructor(private readonly sql: Sql) {}

  /** Events matching `filter` with sequence > after, oldest first. */
  async list(filter: AuditFilter, after: number, limit: number): Promise<ChainedRow[]> {
    const sql = this.sql;
    const rows = await sql<Row[]>`
      SELECT * FROM audit_events
      WHERE sequence > ${after}
        ${filter.keyId ? sql`AND key_id = ${filter.keyId}` : sql``}
        ${filter.principal ? sql`AND principal = ${filter.principal}` : sql``}
        ${filter.operation ? sql`AND operation = ${filter.operation}` : sql``}
        ${filter.startTime ? sql`AND time >= ${filter.startTime}` : sql``}
        ${filter.endTime ? sql`AND time < ${filter.endTime}` : sql``}
      ORDER BY sequence
      LIMIT ${limit}`;
    return rows.map(toRow);
  }

  /** The recorded head (audit_head), or undefined when there is none. */
  async head(): Promise<{ sequence: number; hash: Buffer } | undefined> {
    const heads = await this.sql<{ sequence: string; hash: Buffer }[]>`SELECT sequence, hash FROM audit_head WHERE id = 1`;
    return heads[0] ? { sequence: Number(heads[0].sequence), hash: heads[0].hash } : undefined;
  }

  /**
   * Verifies rows start..end (0: the first / the last) page by page; the head is checked at the end.
   * `checkpoint` (its signature already checked, its sequence inside the range): the chain must reach it.
   */
  async verify(start = 0, end = 0, pageSize = 5000, checkpoint?: { sequence: number; headHash: Buffer }): Promise<VerifyResult> {
    const sql = this.sql;
    const first = Math.max(start, 1);
    let from: { sequence: number; hash: Buffer } = { sequence: 0, hash: GENESIS_HASH };
    if (first > 1) {
      const prev = await sql<Row[]>`SELECT * FROM audit_events WHERE sequence = ${first - 1}`;
      if (prev[0]) from = { sequence: first - 1, hash: prev[0].hash };
      else return { verifiedCount: 0, ok: false, firstBadSequence: first - 1, problem: "row before the range is missing" };
    }
    const verifier = new ChainVerifier(from, checkpoint);
    let after = first - 1;
    for (;;) {
      const rows = await sql<Row[]>`
        SELECT * FROM audit_events WHERE sequence > ${after} ${end > 0 ? sql`AND sequence <= ${end}` : sql``}
        ORDER BY sequence LIMIT ${pageSize}`;
      for (const r of rows) if (!verifier.add(toRow(r))) return verifier.result();
      if (rows.length < pageSize) break;
      after = Number(rows[rows.length - 1]!.sequence);
    }
    if (end > 0) return verifier.result();
    return verifier.result(await this.head());
  }
}

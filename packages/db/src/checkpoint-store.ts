// Signed audit checkpoints (migration 7): stored as the worker signed them, listed newest first.
import type { SignedCheckpoint } from "@kms/audit-chain";
import type { Sql } from "./connect";

export interface StoredCheckpoint extends SignedCheckpoint {
  id: number;
}

type Row = Omit<StoredCheckpoint, "id" | "sequence"> & { id: string; sequence: string };

export class CheckpointStore {
  constructor(private readonly sql: Sql) {}

  async insert(c: SignedCheckpoint): Promise<void> {
    await this.sql`
      INSERT INTO audit_checkpoints (sequence, head_hash, time, key_id, signature)
      VALUES (${c.sequence}, ${c.headHash}, ${c.time}, ${c.keyId}, ${c.signature})`;
  }

  /** Newest first (by id), those with id < `before` when given. */
  async list(limit: number, before?: number): Promise<StoredCheckpoint[]> {
    const sql = this.sql;
    const rows = await sql<Row[]>`
      SELECT * FROM audit_checkpoints ${before !== undefined ? sql`WHERE id < ${before}` : sql``}
      ORDER BY id DESC LIMIT ${limit}`;
    return rows.map((r) => ({ ...r, id: Number(r.id), sequence: Number(r.sequence) }));
  }
}

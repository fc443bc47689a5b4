// The audit trail is one SHA-256 hash chain: each row's hash covers its canonical content and its
// predecessor's hash, so deleting, editing, inserting or reordering rows breaks the chain at the first
// changed row. Pure functions only; the database layer and the offline verifier both use them.
import { hash } from "node:crypto";

export const GENESIS_HASH: Buffer = Buffer.alloc(32);

/** What an audit row says. `sequence` numbers rows 1, 2, 3… with no gaps. */
export interface AuditRow {
  sequence: number;
  time: Date;
  requestId: string;
  principal: string;
  operation: string;
  keyId: string;
  keyVersionId: string;
  resultCode: string;
  errorCode: string;
  /** Stored as the caller gave it (like AWS CloudTrail): contexts must not hold secrets. */
  encryptionContext: Record<string, string>;
  /** The grant that allowed the call; "" or absent when none did. */
  grantId?: string;
  /** The call was a dry run. */
  dryRun?: boolean;
}

export interface ChainedRow extends AuditRow {
  prevHash: Buffer;
  hash: Buffer;
}

/**
 * Length-prefixed fields in a fixed order (u64 sequence, then each field as u32 byte length ‖ UTF-8),
 * the context sorted by key and preceded by its entry count. Then, only when set, the later fields as
 * tagged fields ("grant=<id>", "dry_run"): rows without them hash as they always did. Injective by
 * construction (the context's count says where the tagged fields start). Written into one buffer: this
 * runs for every audited request.
 */
export function canonicalRow(row: AuditRow): Buffer {
  return canonicalInto(row, 0);
}

/** canonicalRow(row) after `reserve` bytes left for the caller (rowHash puts the previous hash there). */
function canonicalInto(row: AuditRow, reserve: number): Buffer {
  const context = Object.entries(row.encryptionContext).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const fields = [
    row.time.toISOString(),
    row.requestId,
    row.principal,
    row.operation,
    row.keyId,
    row.keyVersionId,
    row.resultCode,
    row.errorCode,
    String(context.length),
  ];
  for (const [k, v] of context) fields.push(k, v);
  if (row.grantId) fields.push(`grant=${row.grantId}`);
  if (row.dryRun) fields.push("dry_run");
  let size = reserve + 8;
  for (const f of fields) size += 4 + Buffer.byteLength(f, "utf8");
  const out = Buffer.allocUnsafe(size);
  out.writeBigUInt64BE(BigInt(row.sequence), reserve);
  let offset = reserve + 8;
  for (const f of fields) {
    const written = out.write(f, offset + 4, "utf8");
    out.writeUInt32BE(written, offset);
    offset += 4 + written;
  }
  return out;
}

/** SHA-256(prevHash ‖ canonicalRow(row)), hashed in one call from one buffer. */
export function rowHash(prevHash: Buffer, row: AuditRow): Buffer {
  const input = canonicalInto(row, prevHash.length);
  prevHash.copy(input, 0);
  return hash("sha256", input, "buffer") as unknown as Buffer;
}

/** Chains new rows after the head (sequence and hash of the last row; 0 and GENESIS for none). */
export function chainRows(head: { sequence: number; hash: Buffer }, rows: Omit<AuditRow, "sequence">[]): ChainedRow[] {
  let prevHash = head.hash;
  return rows.map((r, i) => {
    const row = { ...r, sequence: head.sequence + 1 + i };
    const hash = rowHash(prevHash, row);
    const chained = { ...row, prevHash, hash };
    prevHash = hash;
    return chained;
  });
}

export interface VerifyResult {
  verifiedCount: number;
  ok: boolean;
  /** The first row that does not fit the chain (0 when ok). */
  firstBadSequence: number;
  /** Why, for people: "hash mismatch", "gap before", … */
  problem: string;
  /** With a checkpoint: the chain holds its row, with its hash. */
  checkpointMatched?: boolean;
}

/**
 * Checks rows in sequence order, starting after `from` (the row before the first, or the genesis).
 * Feed rows with add() in order; result() says where the chain first breaks.
 */
export class ChainVerifier {
  private expectedSequence: number;
  private prevHash: Buffer;
  private count = 0;
  private bad: { sequence: number; problem: string } | undefined;
  private checkpointMatched = false;

  /**
   * `checkpoint`: a signed checkpoint (its signature already checked): the chain must reach its sequence
   * with the same hash there, or it was cut or rewritten after the checkpoint was made.
   */
  constructor(
    from: { sequence: number; hash: Buffer } = { sequence: 0, hash: GENESIS_HASH },
    private readonly checkpoint?: { sequence: number; headHash: Buffer },
  ) {
    this.expectedSequence = from.sequence + 1;
    this.prevHash = from.hash;
  }

  /** Returns false once the chain is broken (later rows need not be read). */
  add(row: ChainedRow): boolean {
    if (this.bad) return false;
    if (row.sequence !== this.expectedSequence) {
      // A deleted row shows as a gap, an inserted or moved one as a repeat or a step back.
      const problem = row.sequence > this.expectedSequence ? `rows ${this.expectedSequence}..${row.sequence - 1} are missing` : "out of order";
      this.bad = { sequence: Math.min(row.sequence, this.expectedSequence), problem };
      return false;
    }
    if (!row.prevHash.equals(this.prevHash)) {
      this.bad = { sequence: row.sequence, problem: "does not link to the previous row" };
      return false;
    }
    if (!rowHash(this.prevHash, row).equals(row.hash)) {
      this.bad = { sequence: row.sequence, problem: "content does not match its hash" };
      return false;
    }
    if (this.checkpoint && row.sequence === this.checkpoint.sequence) {
      if (!row.hash.equals(this.checkpoint.headHash)) {
        this.bad = { sequence: row.sequence, problem: `row ${row.sequence} is not the one the signed checkpoint names` };
        return false;
      }
      this.checkpointMatched = true;
    }
    this.prevHash = row.hash;
    this.expectedSequence++;
    this.count++;
    return true;
  }

  /** `head`, when known, is the last row the writers recorded: rows missing at the end show here. */
  result(head?: { sequence: number; hash: Buffer }): VerifyResult {
    if (!this.bad && head && head.sequence >= this.expectedSequence) {
      this.bad = { sequence: this.expectedSequence, problem: `rows ${this.expectedSequence}..${head.sequence} are missing at the end` };
    }
    if (!this.bad && head && head.sequence < this.expectedSequence - 1) {
      this.bad = { sequence: head.sequence + 1, problem: "rows after the recorded head" };
    }
    if (!this.bad && head && head.sequence === this.expectedSequence - 1 && !head.hash.equals(this.prevHash)) {
      this.bad = { sequence: head.sequence, problem: "last row does not match the recorded head" };
    }
    if (!this.bad && this.checkpoint && !this.checkpointMatched) {
      const last = this.expectedSequence - 1;
      this.bad = { sequence: this.expectedSequence, problem: `the chain ends at ${last}, before the signed checkpoint at ${this.checkpoint.sequence}` };
    }
    const matched = this.checkpoint ? { checkpointMatched: this.checkpointMatched } : {};
    return this.bad
      ? { verifiedCount: this.count, ok: false, firstBadSequence: this.bad.sequence, problem: this.bad.problem, ...matched }
      : { verifiedCount: this.count, ok: true, firstBadSequence: 0, problem: "", ...matched };
  }
}

export { checkpointFromJson, checkpointKeyId, checkpointPayload, checkpointToJson, verifyCheckpoint } from "./checkpoint";
export type { Checkpoint, CheckpointJson, SignedCheckpoint } from "./checkpoint";
